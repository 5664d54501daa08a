// Stand-in for the part of org.pytorch:executorch-android 1.4.0 that the :policy library's
// ExecuTorchMethods calls, for the app compile in policy/run_tests.sh only (no Gradle source set
// holds it). Signatures as declared at pytorch/executorch tag v1.4.0 (commit 3dd7ccd1d8), in
// extension/android/executorch_android/src/main/java/org/pytorch/executorch/:
//   Module.kt                      Module, LOAD_MODE_*, load, loadMethod, execute, getMethods,
//                                  getMethodMetadata, destroy, close
//   MethodMetadata.kt              MethodMetadata
//   EValue.kt                      EValue: from (every overload), isTensor, toTensor
//   Tensor.kt                      Tensor: fromBlob (every overload), dtype, dataAsFloatArray
//   DType.kt                       DType (every entry, so that a `when` is as exhaustive as there)
//   ExecutorchRuntimeException.kt  ExecutorchRuntimeException, errorCode
// Overloads of the members called are all here, so that a call ambiguous there fails here too.
package org.pytorch.executorch

import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.DoubleBuffer
import java.nio.FloatBuffer
import java.nio.IntBuffer
import java.nio.LongBuffer
import java.nio.ShortBuffer

private fun standIn(): Nothing = error("stand-in: org.pytorch.executorch is not on this JVM")

open class Module private constructor() : Closeable {
    open fun execute(methodName: String, vararg inputs: EValue): Array<EValue> = standIn()

    /** 1.4.0 throws [ExecutorchRuntimeException] when the runtime's error code is not 0; it returns nothing. */
    open fun loadMethod(methodName: String): Unit = standIn()

    open fun getMethods(): Array<String> = standIn()

    open fun getMethodMetadata(name: String): MethodMetadata = standIn()

    open fun destroy(): Unit = standIn()

    override fun close(): Unit = standIn()

    companion object {
        const val LOAD_MODE_FILE = 0
        const val LOAD_MODE_MMAP = 1
        const val LOAD_MODE_MMAP_USE_MLOCK = 2
        const val LOAD_MODE_MMAP_USE_MLOCK_IGNORE_ERRORS = 3

        @JvmStatic
        @JvmOverloads
        fun load(modelPath: String?, loadMode: Int = LOAD_MODE_FILE, numThreads: Int = 0): Module = standIn()
    }
}

class MethodMetadata internal constructor(val name: String, val backends: Array<String>)

class EValue private constructor() {
    val isTensor: Boolean get() = standIn()

    fun toTensor(): Tensor = standIn()

    companion object {
        @JvmStatic fun from(tensor: Tensor): EValue = standIn()
        @JvmStatic fun from(value: Boolean): EValue = standIn()
        @JvmStatic fun from(value: Long): EValue = standIn()
        @JvmStatic fun from(value: Double): EValue = standIn()
        @JvmStatic fun from(value: String): EValue = standIn()
    }
}

abstract class Tensor internal constructor(shape: LongArray) {
    abstract fun dtype(): DType

    open val dataAsFloatArray: FloatArray get() = standIn()

    companion object {
        @JvmStatic fun fromBlobUnsigned(data: ByteArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: ByteArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: IntArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: FloatArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: ShortArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: LongArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: DoubleArray, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlobUnsigned(data: ByteBuffer, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: ByteBuffer, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: IntBuffer, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: FloatBuffer, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: ShortBuffer, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: LongBuffer, shape: LongArray): Tensor = standIn()
        @JvmStatic fun fromBlob(data: DoubleBuffer, shape: LongArray): Tensor = standIn()
    }
}

enum class DType(@JvmField val jniCode: Int) {
    UINT8(0), INT8(1), INT16(2), INT32(3), INT64(4), HALF(5), FLOAT(6), DOUBLE(7),
    COMPLEX_HALF(8), COMPLEX_FLOAT(9), COMPLEX_DOUBLE(10), BOOL(11), QINT8(12), QUINT8(13), QINT32(14),
    BFLOAT16(15), QINT4X2(16), QINT2X4(17), BITS1X8(18), BITS2X4(19), BITS4X2(20), BITS8(21), BITS16(22),
}

open class ExecutorchRuntimeException(val errorCode: Int, details: String?) : RuntimeException(details) {
    constructor(errorCode: Int, details: String?, cause: Throwable?) : this(errorCode, details)

    class ExecutorchInvalidArgumentException(details: String?) : ExecutorchRuntimeException(0x12, details)
}

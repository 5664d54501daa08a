package ai.edgevariator.policy

import org.pytorch.executorch.DType
import org.pytorch.executorch.EValue
import org.pytorch.executorch.ExecutorchRuntimeException
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File

/*
 * The one file of the library that needs org.pytorch:executorch-android. Gradle adds this folder
 * to the Android library's main source set; run_tests.sh compiles it with the app against
 * stand-ins of the AAR's API (app/standins) but cannot run it, so keep everything testable in
 * Runner.kt and this file thin.
 */

/**
 * [Methods] over an ExecuTorch program: [Module] loaded with [loadMode] (memory-mapped by
 * default, so model.pte's pages are read as the methods touch them rather than copied up front).
 */
class ExecuTorchMethods private constructor(private val module: Module, private val program: File) : Methods {
    override val names: Set<String> = module.getMethods().toSet()

    override val runtime: String by lazy {
        "executorch-android ${BuildConfig.EXECUTORCH_VERSION} (${names.flatMap(::backends).distinct().sorted().joinToString()})"
    }

    override fun load(name: String) {
        try {
            module.loadMethod(name)  // 1.4.0 returns nothing: a nonzero error code comes as this exception
        } catch (error: ExecutorchRuntimeException) {
            val code = error.errorCode
            throw MethodException(
                name,
                "ExecuTorch cannot load method $name of $program: ${executorchErrorName(code)} (error code 0x${code.toString(16)})",
                error,
            )
        }
    }

    override fun run(name: String, inputs: List<MethodInput>): FloatArray {
        val values = inputs.map { input ->
            when (input) {
                is MethodInput.Int64 -> EValue.from(Tensor.fromBlob(input.values, input.shape))
                is MethodInput.Float32 -> EValue.from(Tensor.fromBlob(input.values, input.shape))
            }
        }
        val outputs = try {
            module.execute(name, *values.toTypedArray())
        } catch (error: RuntimeException) {
            throw MethodException(name, "ExecuTorch failed to run $name: ${error.message}", error)
        }
        val tensor = try {
            outputs.firstOrNull()?.toTensor()
        } catch (error: IllegalStateException) {
            null  // the first output is not a tensor
        }
        if (tensor == null || tensor.dtype() != DType.FLOAT) {
            throw MethodException(name, "$name did not return a float32 tensor (got ${outputs.size} outputs, first $tensor)")
        }
        // A copy: the output tensor wraps the method's own memory, which its next call reuses.
        return tensor.dataAsFloatArray
    }

    override fun backends(name: String): List<String> = module.getMethodMetadata(name).backends.toList()

    override fun close() = module.destroy()

    companion object {
        fun load(program: File, loadMode: Int = Module.LOAD_MODE_MMAP): ExecuTorchMethods {
            val module = try {
                Module.load(program.absolutePath, loadMode)
            } catch (error: RuntimeException) {
                throw MethodException("", "ExecuTorch cannot load $program: ${error.message}", error)
            }
            return ExecuTorchMethods(module, program)
        }

        /** The bundle in [bundleDir] on ExecuTorch: what an app calls to get a runner. */
        fun openBundle(bundleDir: File, loadMode: Int = Module.LOAD_MODE_MMAP): BundleRunner =
            BundleRunner.open(bundleDir) { program -> load(program, loadMode) }
    }
}

package ai.edgevariator.demo

import android.content.Context
import android.content.res.AssetManager
import java.io.File

/**
 * Where the app finds its bundle: pushed with adb into its own storage
 * (/sdcard/Android/data/<package>/files/bundle), else shipped in the APK's assets/bundle and
 * copied to internal storage once, because ExecuTorch loads a .pte from a file path.
 */
object BundleStore {
    private const val FOLDER = "bundle"

    fun pushedFolder(context: Context): File? = context.getExternalFilesDir(null)?.let { File(it, FOLDER) }

    /** The bundle folder, or null when neither place has a manifest.json. */
    fun locate(context: Context): File? {
        pushedFolder(context)?.takeIf { File(it, "manifest.json").isFile }?.let { return it }
        return copyFromAssets(context)
    }

    private fun copyFromAssets(context: Context): File? {
        val assets = context.assets
        if ("manifest.json" !in assets.list(FOLDER).orEmpty()) return null
        val target = File(context.filesDir, FOLDER)
        val shipped = assets.open("$FOLDER/manifest.json").use { it.readBytes() }
        val copied = File(target, "manifest.json")
        if (copied.isFile && copied.readBytes().contentEquals(shipped)) return target
        // Copy beside and rename, so that an interrupted copy never looks like a bundle.
        val partial = File(context.filesDir, "$FOLDER.partial")
        partial.deleteRecursively()
        copyTree(assets, FOLDER, partial)
        target.deleteRecursively()
        check(partial.renameTo(target)) { "cannot move the copied bundle to $target" }
        return target
    }

    private fun copyTree(assets: AssetManager, path: String, target: File) {
        val children = assets.list(path).orEmpty()
        if (children.isEmpty()) {  // a file: AssetManager lists no children for it
            target.parentFile?.mkdirs()
            assets.open(path).use { input -> target.outputStream().use { input.copyTo(it) } }
            return
        }
        target.mkdirs()
        for (child in children) copyTree(assets, "$path/$child", File(target, child))
    }
}

package ai.edgevariator.demo

import android.content.Context
import ai.edgevariator.policy.BundleRunner
import ai.edgevariator.policy.ExecuTorchMethods
import ai.edgevariator.policy.ManifestException
import ai.edgevariator.policy.Policy
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * The process's one bundle runner (the :policy library's, on ExecuTorch) and policy, and the one
 * thread that uses them: a profile never overlaps a classification, and the policy's memory of the
 * active rule spans both screens.
 */
object Engine {
    val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var runner: BundleRunner? = null  // touched only on the worker
    private var policy: Policy? = null

    /** On the worker: the runner, loading the bundle on first use. */
    fun runner(context: Context): BundleRunner {
        runner?.let { return it }
        val folder = BundleStore.locate(context.applicationContext) ?: throw ManifestException(
            "no bundle: adb push it to ${BundleStore.pushedFolder(context)} or put it in app/src/main/assets/bundle",
        )
        return ExecuTorchMethods.openBundle(folder).also { runner = it }
    }

    /** On the worker: the bundle's policy (its manifest's table, else the default one). */
    fun policy(context: Context): Policy =
        policy ?: Policy.fromManifest(runner(context).manifest).also { policy = it }
}

package ai.edgevariator.demo

import android.content.Context
import ai.edgevariator.policy.BundleRunner
import ai.edgevariator.policy.CalibratedPolicy
import ai.edgevariator.policy.ExecuTorchMethods
import ai.edgevariator.policy.ManifestException
import ai.edgevariator.policy.Policy
import ai.edgevariator.policy.calibratedPolicyFile
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

    /** Where [policy]'s table came from, for the screen; set with it. */
    var policySource: String = ""
        private set

    /** On the worker: the runner, loading the bundle on first use. */
    fun runner(context: Context): BundleRunner {
        runner?.let { return it }
        val folder = BundleStore.locate(context.applicationContext) ?: throw ManifestException(
            "no bundle: adb push it to ${BundleStore.pushedFolder(context)} or put it in app/src/main/assets/bundle",
        )
        return ExecuTorchMethods.openBundle(folder).also { runner = it }
    }

    /**
     * On the worker: the bundle's policy. The table calibrated for this phone when the bundle keeps
     * one (profiles/executorch/<device>.policy.json, refused with ProfileException when its runtime,
     * program or table does not check out against the bundle), else the manifest's.
     */
    fun policy(context: Context): Policy {
        policy?.let { return it }
        val runner = runner(context)
        val folder = checkNotNull(runner.bundleDir) { "the runner has no bundle folder" }
        val calibrated = CalibratedPolicy.forDevice(folder, runner.manifest, deviceName())
        val source = if (calibrated == null) "policy from the manifest" else {
            "policy calibrated for ${calibrated.device} at ${calibrated.length} tokens " +
                "(${calibratedPolicyFile(folder, calibrated.runtime, deviceName()).name})"
        }
        return Policy.fromManifest(runner.manifest, calibrated?.policy).also {
            policy = it
            policySource = source
        }
    }
}

package ai.edgevariator.policy

import java.io.File

/*
 * A calibrated policy (docs/BUNDLE.md): the manifest's table with each budgeted rule's ratio fitted
 * to one device's latency profile, which `edge-variator calibrate` writes beside that profile as
 * profiles/<runtime>/<device>.policy.json. An app uses its table instead of the manifest's when its
 * runtime, program and table all check out against the bundle (profile.py's
 * check_calibrated_policy), and refuses the file otherwise.
 */

const val CALIBRATED_POLICY_FORMAT = "edge-variator-calibrated-policy"
const val CALIBRATED_POLICY_VERSION = 2

data class CalibratedPolicy(
    val runtime: String,  // the program the profile it came from timed: "executorch" or "coreml"
    val device: String,
    val programSha256: String,
    val length: Int,  // the tokens the budgets were fitted at
    val budgets: Map<String, Double>,  // rule name -> ms
    val policy: PolicyTable,  // what Policy.fromManifest(manifest, policy) runs
) {
    companion object {
        private val FIELDS = listOf("format", "version", "runtime", "device", "program_sha256", "length", "budgets", "policy")

        /**
         * The calibrated policy in [json], refused (ProfileException) unless it is of this format and
         * version, was calibrated on [manifest]'s [runtime] program, and holds a table that the bundle's
         * ratios and thresholds can carry out.
         */
        fun fromJson(json: Any?, manifest: Manifest, runtime: String = RUNTIME_EXECUTORCH): CalibratedPolicy {
            val fields = deviceFileFields(json, "calibrated policy", CALIBRATED_POLICY_FORMAT, CALIBRATED_POLICY_VERSION)
            val unknown = fields.keys.filter { it !in FIELDS }.sorted()
            if (unknown.isNotEmpty()) throw ProfileException("a calibrated policy has no fields $unknown; it has $FIELDS")
            val budgets = fields.obj("budgets").let { all ->
                all.keys.associateWith { name ->
                    all.double(name).takeIf { it > 0.0 }
                        ?: throw ProfileException("${all.where}.$name must be a positive number of ms")
                }
            }
            val length = fields.int("length").takeIf { it >= 1 }
                ?: throw ProfileException("${fields.where}.length must be a whole number of tokens, at least 1")
            val table = try {
                PolicyTable.fromJson(fields.required("policy"))
            } catch (error: PolicyException) {
                throw ProfileException("the calibrated policy's table: ${error.message}")
            }
            val calibrated = CalibratedPolicy(
                deviceFileRuntime(fields), fields.string("device"), fields.sha256("program_sha256"), length, budgets, table,
            )
            checkProgram(calibrated.runtime, calibrated.programSha256, manifest, runtime, "calibrated policy")
            try {
                checkPolicy(table, manifest.ratios.keys, manifest.exits.thresholds)
            } catch (error: PolicyException) {
                throw ProfileException("the calibrated policy's table cannot be carried out by this bundle: ${error.message}")
            }
            return calibrated
        }

        /** The calibrated policy in [file], checked as [fromJson] does. */
        fun load(file: File, manifest: Manifest, runtime: String = RUNTIME_EXECUTORCH): CalibratedPolicy =
            fromJson(readDeviceFile(file, "calibrated policy"), manifest, runtime)

        /**
         * The policy calibrated for [device] that [bundleDir] keeps (profiles/<runtime>/<device>.policy.json):
         * null when there is none, refused (ProfileException) when it does not check out.
         */
        fun forDevice(bundleDir: File, manifest: Manifest, device: String, runtime: String = RUNTIME_EXECUTORCH): CalibratedPolicy? =
            calibratedPolicyFile(bundleDir, runtime, device).takeIf { it.isFile }?.let { load(it, manifest, runtime) }
    }
}

package ai.edgevariator.demo

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.text.InputType
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import ai.edgevariator.policy.RunResult
import java.util.Locale

/**
 * The classify screen: each run reads the phone's battery, power-save and thermal state, lets the
 * bundle's policy pick the ratio and exit threshold, and runs the early-exit loop in ExecuTorch.
 */
class MainActivity : Activity() {
    private lateinit var monitor: DeviceMonitor
    private lateinit var bundleView: TextView
    private lateinit var deviceView: TextView
    private lateinit var textInput: EditText
    private lateinit var budgetInput: EditText
    private lateinit var classifyButton: Button
    private lateinit var resultsView: TextView
    private val results = ArrayDeque<String>()  // newest first

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        monitor = DeviceMonitor(this) { showDevice() }
        bundleView = label("loading the bundle…")
        deviceView = label()
        textInput = field("a text to classify", "a gripping, beautifully acted film",
            InputType.TYPE_CLASS_TEXT or InputType.TYPE_TEXT_FLAG_MULTI_LINE, lines = 3)
        budgetInput = field("latency budget in ms (optional; used when the policy has latency_ms)",
            inputType = InputType.TYPE_CLASS_NUMBER or InputType.TYPE_NUMBER_FLAG_DECIMAL)
        classifyButton = button("Classify") { classify() }.apply { isEnabled = false }
        resultsView = label(monospace = true)
        setContentView(screen(
            bundleView, deviceView, textInput, budgetInput, classifyButton,
            button("Profile every method…") { startActivity(Intent(this, ProfileActivity::class.java)) },
            resultsView,
        ))
        Engine.worker.execute {
            val (status, ready) = try {
                val runner = Engine.runner(this)
                val manifest = runner.manifest
                val policy = try {
                    Engine.policy(this)
                    Engine.policySource
                } catch (error: IllegalArgumentException) {  // a calibrated policy that does not check out
                    "policy refused: ${error.message}"
                }
                "${manifest.backboneId}: ${manifest.model.layers} layers, ratios ${manifest.ratios.keys.sorted()}, " +
                    "exits ${manifest.exits.criterion.wireName} ${manifest.exits.thresholds}, $policy; " +
                    "backends ${runner.backends}\n${runner.bundleDir}" to true
            } catch (error: Exception) {
                "cannot load the bundle: ${error.message}" to false
            }
            runOnUiThread {
                bundleView.text = status
                classifyButton.isEnabled = ready
            }
        }
    }

    override fun onResume() {
        super.onResume()
        monitor.start()
        showDevice()
    }

    override fun onPause() {
        monitor.stop()
        super.onPause()
    }

    private fun showDevice() {
        deviceView.text = monitor.read().describe()
    }

    private fun classify() {
        val text = textInput.text.toString()
        val budgetText = budgetInput.text.toString().trim()
        val budgetMs = if (budgetText.isEmpty()) null else budgetText.toDoubleOrNull()
        if (budgetText.isNotEmpty() && budgetMs == null) {
            show("the budget must be a number of ms, not '$budgetText'")
            return
        }
        val readings = monitor.read()  // the state at the moment of the run is what the policy sees
        classifyButton.isEnabled = false
        Engine.worker.execute {
            val report = try {
                // the runner decides once the text is tokenized: a calibrated policy follows its padded length
                describe(Engine.runner(this).run(text, readings.toState(budgetMs), Engine.policy(this)))
            } catch (error: IllegalArgumentException) {  // DeviceState, Text, Policy and Manifest exceptions
                "refused: ${error.message}"
            } catch (error: Exception) {
                "failed: ${error.javaClass.simpleName}: ${error.message}"
            }
            runOnUiThread {
                show(report)
                classifyButton.isEnabled = true
                deviceView.text = readings.describe()
            }
        }
    }

    private fun show(report: String) {
        results.addFirst(report)
        while (results.size > 20) results.removeLast()
        resultsView.text = results.joinToString("\n\n")
    }

    private fun describe(result: RunResult): String {
        val decision = result.decision
        val threshold = decision.thresholdName?.let { "exit threshold $it = ${format(decision.threshold!!)}" }
            ?: "no early exit"
        val embedMs = result.stepMs["embed"] ?: 0.0
        val exitMs = result.stepMs.filterKeys { it.startsWith("exit_") }.values.sum()
        return "${result.label} (p = ${format(result.probabilities[result.labelIndex])}, uncertainty " +
            "${format(result.uncertainty)})\n" +
            "exit after layer ${result.exitLayer}/${result.layers} · k = ${decision.ratio} · rule ${decision.rule}" +
            (if (decision.lengthApplied) " (k lowered: faster at this length)" else "") +
            (if (decision.budgetApplied) " (k raised by the budget)" else "") + " · $threshold\n" +
            "${result.tokens} tokens${if (result.truncated) " (text truncated)" else ""} · " +
            "${format(result.totalMs)} ms: embed ${format(embedMs)}, layers " +
            "${format(result.totalMs - embedMs - exitMs)}, exits ${format(exitMs)}"
    }

    private fun format(value: Double): String = String.format(Locale.ROOT, "%.3g", value)
}

package ai.edgevariator.demo

import android.app.Activity
import android.os.Bundle
import android.text.InputType
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import ai.edgevariator.policy.Json
import ai.edgevariator.policy.depthLatencyMs
import ai.edgevariator.policy.latencyProfileJson
import java.io.File
import java.util.Locale

/**
 * Times every method of the bundle at a few lengths and writes profile.json in the format
 * `edge-variator profile BUNDLE --import profile.json` reads (edge_variator/profile.py): a latency
 * profile of version 2 of the bundle's ExecuTorch program, named after [deviceName], which is also
 * the name the policy calibrated from it is looked up by (Engine).
 */
class ProfileActivity : Activity() {
    private lateinit var lengthsInput: EditText
    private lateinit var warmupInput: EditText
    private lateinit var repeatsInput: EditText
    private lateinit var startButton: Button
    private lateinit var statusView: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        lengthsInput = field("lengths (tokens), comma-separated", "16,32,64,128")
        warmupInput = field("warm-up rounds", "3", InputType.TYPE_CLASS_NUMBER)
        repeatsInput = field("timed rounds", "20", InputType.TYPE_CLASS_NUMBER)
        startButton = button("Profile") { profile() }
        statusView = label(monospace = true)
        setContentView(screen(
            label("Lengths, warm-up rounds and timed rounds:"), lengthsInput, warmupInput, repeatsInput,
            startButton, statusView,
        ))
    }

    private fun profile() {
        val lengths = lengthsInput.text.split(',').map { it.trim() }.filter { it.isNotEmpty() }.map { it.toIntOrNull() }
        val warmup = warmupInput.text.toString().trim().toIntOrNull()
        val repeats = repeatsInput.text.toString().trim().toIntOrNull()
        if (lengths.isEmpty() || null in lengths || warmup == null || repeats == null) {
            statusView.text = "lengths, warm-up and rounds must be whole numbers"
            return
        }
        startButton.isEnabled = false
        statusView.text = "loading the bundle…"
        Engine.worker.execute {
            val report = try {
                measure(lengths.filterNotNull(), warmup, repeats)
            } catch (error: IllegalArgumentException) {
                "refused: ${error.message}"
            } catch (error: Exception) {
                "failed: ${error.javaClass.simpleName}: ${error.message}"
            }
            runOnUiThread {
                statusView.text = report
                startButton.isEnabled = true
            }
        }
    }

    /** On the worker: time, write profile.json, and say where it is and what it shows. */
    private fun measure(lengths: List<Int>, warmup: Int, repeats: Int): String {
        val runner = Engine.runner(this)
        val manifest = runner.manifest
        val began = System.nanoTime()
        val timings = runner.profile(lengths, warmup, repeats) { length ->  // checks the lengths and rounds first
            runOnUiThread { statusView.text = "timing ${manifest.methods.size} methods at $length tokens…" }
        }
        val seconds = (System.nanoTime() - began) / 1e9
        val profile = latencyProfileJson(
            manifest = manifest,  // program_sha256: its files.executorch.sha256, the program timed
            device = deviceName(),
            runtimeVersion = runner.methods.runtime,
            warmup = warmup,
            repeats = repeats,
            timings = timings,
        )
        val file = File(getExternalFilesDir(null) ?: filesDir, "profile.json")
        file.writeText(Json.write(profile))
        val perRatio = lengths.joinToString("\n") { length ->
            "$length tokens: " + manifest.ratios.keys.sorted().joinToString(", ") { ratio ->
                "k=$ratio ${String.format(Locale.ROOT, "%.2f", depthLatencyMs(manifest, timings, ratio, length).last())} ms"
            }
        }
        return "wrote $file in ${String.format(Locale.ROOT, "%.0f", seconds)} s\n" +
            "every layer, median (embed + layers + exits):\n$perRatio\n\n" +
            "adb pull $file\nedge-variator profile BUNDLE --import profile.json"
    }
}

import EdgeVariatorPolicy
import SwiftUI

/// Type a text, classify it under what the policy decides for the phone's state now, and see
/// what ran: label, the layer it exited after, the ratio, the rule, and the time of each step.
struct ClassifyView: View {
    @EnvironmentObject private var model: DemoModel
    @EnvironmentObject private var device: DeviceMonitor
    @State private var text = "a charming and affecting journey"
    @State private var budgetText = ""

    var body: some View {
        NavigationStack {
            Form {
                Section("Text") {
                    TextField("a review, a question...", text: $text, axis: .vertical)
                        .lineLimit(2...6)
                    Button {
                        Task { await model.classify(text) }
                    } label: {
                        Label(model.busy ? "Running..." : "Classify", systemImage: "play.fill")
                    }
                    .disabled(model.busy || model.bundle == nil || text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
                }
                if let result = model.result { ResultSection(result: result) }
                deviceSection
                decisionSection
                if let message = model.message {
                    Section { Text(message).font(.footnote).foregroundStyle(.secondary) }
                }
            }
            .navigationTitle(model.bundle?.manifest.backbone.id ?? "Edge Variator")
        }
    }

    private var deviceSection: some View {
        Section {
            LabeledContent("Thermal", value: device.thermal.rawValue)
            LabeledContent("Battery", value: device.battery.map { "\(Int(($0 * 100).rounded()))%" } ?? "unknown")
            LabeledContent("Plugged in", value: device.charging ? "yes" : "no")
            LabeledContent("Low Power Mode", value: device.lowPower ? "on" : "off")
            Toggle("Simulate a state", isOn: $device.simulate)
            if device.simulate {
                Picker("Thermal", selection: $device.simulatedThermal) {
                    ForEach(ThermalState.allCases, id: \.self) { Text($0.rawValue).tag($0) }
                }
                LabeledContent("Battery \(Int((device.simulatedBattery * 100).rounded()))%") {
                    Slider(value: $device.simulatedBattery, in: 0...1, step: 0.01)
                }
                Toggle("Plugged in", isOn: $device.simulatedCharging)
                Toggle("Low Power Mode", isOn: $device.simulatedLowPower)
            }
            TextField("latency budget (ms), optional", text: $budgetText)
                .keyboardType(.decimalPad)
                .onChange(of: budgetText) { _, value in model.budgetMs = Double(value) }
        } header: {
            Text("Device")
        } footer: {
            Text("Read from ProcessInfo.thermalState, UIDevice battery level and state, and Low Power Mode; "
                 + "updated on their notifications. A budget, and a ratio that follows the text's length, need the latencies of a policy calibrated for this phone.")
        }
    }

    private var decisionSection: some View {
        Section("The policy now") {
            switch model.preview(text) {
            case .success(let decision):
                LabeledContent("Rule", value: decision.rule)
                LabeledContent("Ratio", value: ratioText(decision))
                LabeledContent("Exit threshold", value: thresholdText(decision))
            case .failure(let error):
                Text(error.localizedDescription).foregroundStyle(.red)
            }
            if let source = model.policySource {
                Text("Table: \(source)").font(.footnote).foregroundStyle(.secondary)
            }
        }
    }
}

/// "k = 1 (lowered: no faster at this length)": the ratio, and what changed the rule's.
func ratioText(_ decision: Decision) -> String {
    "k = \(decision.ratio)" + (decision.lengthApplied ? " (lowered: no faster at this length)" : "")
        + (decision.budgetApplied ? " (raised by the budget)" : "")
}

func thresholdText(_ decision: Decision) -> String {
    guard let name = decision.thresholdName, let value = decision.threshold else { return "none: every layer runs" }
    return "\(name) (\(String(format: "%.3f", value)))"
}

struct ResultSection: View {
    let result: Classification

    var body: some View {
        Section("Result") {
            LabeledContent("Label", value: result.label)
            LabeledContent("Confidence", value: String(format: "%.1f%%", 100 * (result.probabilities.max() ?? 0)))
            LabeledContent("Exit layer", value: "\(result.exitLayer) of \(result.layers)")
            LabeledContent("Ratio", value: ratioText(result.decision))
            LabeledContent("Rule", value: result.decision.rule)
            LabeledContent("Threshold", value: thresholdText(result.decision))
            LabeledContent("Uncertainty", value: String(format: "%.4f", result.uncertainty))
            LabeledContent("Latency", value: String(format: "%.2f ms", result.totalMs))
            LabeledContent("Tokens", value: "\(result.tokens)" + (result.truncated ? " (truncated)" : ""))
            DisclosureGroup("Steps") {
                ForEach(Array(result.steps.enumerated()), id: \.offset) { _, step in
                    LabeledContent(step.method, value: String(format: "%.2f ms", step.ms))
                }
            }
        }
    }
}

import Combine
import EdgeVariatorPolicy
import Foundation
import UIKit

/// The phone's state as the policy reads it: thermal state, battery level and whether it is
/// plugged in, Low Power Mode. Kept current by the system's notifications; the demo can also
/// override it (a phone is hard to heat on demand).
@MainActor
final class DeviceMonitor: ObservableObject {
    @Published private(set) var thermal: ThermalState = .nominal
    @Published private(set) var battery: Double?  // nil: unknown (the simulator reports -1)
    @Published private(set) var charging = false
    @Published private(set) var lowPower = false

    @Published var simulate = false
    @Published var simulatedThermal: ThermalState = .nominal
    @Published var simulatedBattery = 1.0
    @Published var simulatedCharging = false
    @Published var simulatedLowPower = false

    private var observers: [NSObjectProtocol] = []  // for the app's lifetime: never removed

    init() {
        UIDevice.current.isBatteryMonitoringEnabled = true
        let center = NotificationCenter.default
        let names: [Notification.Name] = [
            ProcessInfo.thermalStateDidChangeNotification,
            .NSProcessInfoPowerStateDidChange,  // Low Power Mode on or off
            UIDevice.batteryLevelDidChangeNotification,
            UIDevice.batteryStateDidChangeNotification,
        ]
        // These arrive on whatever thread changed the state: read again on the main actor.
        observers = names.map { name in
            center.addObserver(forName: name, object: nil, queue: .main) { [weak self] _ in
                Task { @MainActor in self?.refresh() }
            }
        }
        refresh()
    }

    func refresh() {
        thermal = ThermalState(ProcessInfo.processInfo.thermalState)
        let level = UIDevice.current.batteryLevel
        battery = level < 0 ? nil : Double(level)
        switch UIDevice.current.batteryState {
        case .charging, .full: charging = true  // plugged in: what the policy's `charging` means
        case .unplugged, .unknown: charging = false
        @unknown default: charging = false
        }
        lowPower = ProcessInfo.processInfo.isLowPowerModeEnabled
    }

    /// The state to decide on now; throws DeviceStateError for a state the policy refuses.
    func state(budgetMs: Double?) throws -> DeviceState {
        if simulate {
            return try DeviceState(battery: simulatedBattery, charging: simulatedCharging, lowPower: simulatedLowPower,
                                   thermal: simulatedThermal, budgetMs: budgetMs)
        }
        // An unknown level (the simulator) counts as full: no battery rule should fire on it.
        return try DeviceState(battery: battery ?? 1.0, charging: charging, lowPower: lowPower, thermal: thermal,
                               budgetMs: budgetMs)
    }

    var summary: String {
        if simulate {
            return "simulated: \(simulatedThermal.rawValue), battery \(Int(simulatedBattery * 100))%"
                + (simulatedCharging ? ", charging" : "") + (simulatedLowPower ? ", Low Power Mode" : "")
        }
        let level = battery.map { "\(Int($0 * 100))%" } ?? "unknown"
        return "\(thermal.rawValue), battery \(level)" + (charging ? ", charging" : "") + (lowPower ? ", Low Power Mode" : "")
    }
}

// Linux stand-in for UIDevice and the Darwin-only ProcessInfo and URL members the app reads, for
// the type-check in run_swift_tests.sh only. Not in the app.
import Foundation

public final class UIDevice {
    public static let current = UIDevice()
    public var isBatteryMonitoringEnabled = false
    public var batteryLevel: Float = -1
    public enum BatteryState: Int { case unknown, unplugged, charging, full }
    public var batteryState: BatteryState = .unknown
    public var systemVersion = "18.0"
    public static let batteryLevelDidChangeNotification = Notification.Name("UIDeviceBatteryLevelDidChangeNotification")
    public static let batteryStateDidChangeNotification = Notification.Name("UIDeviceBatteryStateDidChangeNotification")
}

public extension ProcessInfo {
    enum ThermalState: Int { case nominal, fair, serious, critical }
    var thermalState: ThermalState { .nominal }
    var isLowPowerModeEnabled: Bool { false }
    static let thermalStateDidChangeNotification = Notification.Name("NSProcessInfoThermalStateDidChangeNotification")
}

public extension Notification.Name {
    static let NSProcessInfoPowerStateDidChange = Notification.Name("NSProcessInfoPowerStateDidChangeNotification")
}

public extension URL {
    func startAccessingSecurityScopedResource() -> Bool { false }
    func stopAccessingSecurityScopedResource() {}
}

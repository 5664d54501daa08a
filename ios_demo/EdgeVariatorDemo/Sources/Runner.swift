import Foundation

/// "iPhone16,1 (iOS 18.2)": the model identifier, since UIDevice.name is just "iPhone" since iOS 16.
func deviceDescription(systemVersion: String) -> String {
    var info = utsname()
    uname(&info)
    let machine = withUnsafeBytes(of: &info.machine) { buffer in
        String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }
    return "\(machine) (iOS \(systemVersion))"
}

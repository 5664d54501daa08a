// swift-tools-version:5.9
// The pure-Swift half of the iOS demo: manifest (schema 2) and the bundle's checksums (SHA-256),
// device state, policy, exits, tokenizers (WordPiece, byte-level BPE, Unigram), the latency profile
// and calibrated policy formats. Foundation only (no UIKit, SwiftUI, Core ML or CryptoKit),
// so it builds and is tested on Linux (ios_demo/run_swift_tests.sh) as well as in the app.
import PackageDescription

let package = Package(
    name: "EdgeVariatorPolicy",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "EdgeVariatorPolicy", targets: ["EdgeVariatorPolicy"]),
    ],
    targets: [
        .target(name: "EdgeVariatorPolicy"),
        // tests/vectors is read from the repository (repoRoot): no resource bundle needed.
        .testTarget(name: "EdgeVariatorPolicyTests", dependencies: ["EdgeVariatorPolicy"]),
    ]
)

import SwiftUI

@main
struct EdgeVariatorDemoApp: App {
    @StateObject private var model = DemoModel()

    var body: some Scene {
        WindowGroup {
            TabView {
                ClassifyView()
                    .tabItem { Label("Classify", systemImage: "text.magnifyingglass") }
                ProfileView()
                    .tabItem { Label("Profile", systemImage: "stopwatch") }
                BundlesView()
                    .tabItem { Label("Bundles", systemImage: "shippingbox") }
            }
            .environmentObject(model)
            .environmentObject(model.device)
            .task { model.scan() }
        }
    }
}

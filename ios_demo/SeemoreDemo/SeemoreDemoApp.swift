import SwiftUI

/// SeemoRe super-resolution on the phone: the exported Core ML package (or an ExecuTorch program),
/// tiled and stitched by the same rules as the Android app and the Python reference.
@main
struct SeemoreDemoApp: App {
    @State private var model = UpscaleModel()

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environment(model)
        }
    }
}

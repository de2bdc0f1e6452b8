import PhotosUI
import SwiftUI

/// One screen, top to bottom in the order of the flow: the comparison, the model (compute units, load
/// with its compile / load / warm-up times), the photo (with the memory check), the run (a progress bar
/// per tile) and the result (latencies, op placement, save, share the profile).
struct ContentView: View {
    @Environment(UpscaleModel.self) private var model
    @State private var pickerItem: PhotosPickerItem?

    var body: some View {
        NavigationStack {
            VStack(spacing: 0) {
                CompareView(before: model.photo?.image, after: model.result?.image,
                            scale: model.result?.report.contract.scale ?? model.selectedEntry?.contract?.scale ?? 4)
                    .containerRelativeFrame(.vertical) { height, _ in height * 0.42 }
                Form {
                    modelSection
                    photoSection
                    runSection
                    if let result = model.result {
                        resultSection(result)
                    }
                    statusSection
                }
            }
            .navigationTitle("SeemoRe")
            .navigationBarTitleDisplayMode(.inline)
            .toolbar {
                ToolbarItem(placement: .topBarTrailing) {
                    Menu {
                        Button {
                            model.refreshModels()
                        } label: {
                            Label("Reload model list", systemImage: "arrow.clockwise")
                        }
                        Button(role: .destructive) {
                            model.clearCompileCache()
                        } label: {
                            Label("Clear compile cache", systemImage: "trash")
                        }
                        .disabled(model.isBusy)
                    } label: {
                        Image(systemName: "ellipsis.circle")
                    }
                }
            }
        }
        .task {
            model.refreshModels()
        }
        .onChange(of: pickerItem) { _, item in
            model.pick(item)
        }
    }

    // MARK: - Model

    private var modelSection: some View {
        Section {
            if model.models.isEmpty {
                Text("No model in the app. Copy a .mlpackage and its .mlpackage.json from artifacts/pipeline/coreml/ into SeemoreDemo/Models and run again.")
                    .font(.callout)
                    .foregroundStyle(.secondary)
            } else {
                Picker("Model", selection: Binding(get: { model.selectedModelID },
                                                   set: { model.select(modelID: $0) })) {
                    ForEach(model.models) { entry in
                        Text(entry.name).tag(Optional(entry.id))
                    }
                }
                .pickerStyle(.navigationLink)
                .disabled(model.isBusy)
                if let entry = model.selectedEntry {
                    if let problem = entry.problem {
                        Label(problem, systemImage: "exclamationmark.triangle")
                            .font(.footnote)
                            .foregroundStyle(.red)
                    } else {
                        Text(entry.summary)
                            .font(.footnote)
                            .foregroundStyle(.secondary)
                    }
                    if entry.kind == .coreML {
                        Picker("Compute units", selection: Binding(get: { model.computeUnits },
                                                                   set: { model.select(units: $0) })) {
                            ForEach(ComputeUnitsChoice.allCases) { choice in
                                Text(choice.label).tag(choice)
                            }
                        }
                        .disabled(model.isBusy)
                    }
                    loadButton(entry)
                }
            }
            if let report = model.currentReport {
                loadTimes(report)
            }
        } header: {
            Text("Model")
        } footer: {
            if model.currentReport != nil {
                Text("First-run cost paid up front: the compiled model is cached by its SHA-256, the warm-up ran one zero tile.")
            }
        }
    }

    private func loadButton(_ entry: ModelEntry) -> some View {
        Button {
            model.loadSelectedModel()
        } label: {
            HStack {
                Label(model.currentReport == nil ? "Load and warm up" : "Load again", systemImage: "cpu")
                if model.isLoading {
                    Spacer()
                    ProgressView()
                }
            }
        }
        .disabled(model.isBusy || !entry.isUsable)
    }

    @ViewBuilder
    private func loadTimes(_ report: LoadReport) -> some View {
        LabeledContent("SHA-256 check", value: formatMs(report.verifyMs))
        if report.kind == .coreML {
            LabeledContent("Compile", value: report.compileMs.map(formatMs) ?? "cached")
        }
        LabeledContent("Load", value: formatMs(report.loadMs))
        LabeledContent("Warm-up", value: formatMs(report.warmupMs))
        if report.kind == .coreML {
            LabeledContent("Planned ops", value: opPlacement(report))
        }
    }

    // MARK: - Photo

    private var photoSection: some View {
        Section {
            PhotosPicker(selection: $pickerItem, matching: .images) {
                HStack {
                    Label(model.photo == nil ? "Pick a photo" : "Pick another photo", systemImage: "photo.on.rectangle")
                    if model.isDecoding {
                        Spacer()
                        ProgressView()
                    }
                }
            }
            .disabled(model.isRunning || model.isDecoding)
            if let line = model.fitLine {
                Text(line)
                    .font(.footnote)
                    .foregroundStyle(model.fits ? Color.secondary : Color.red)
            }
        } header: {
            Text("Photo")
        }
    }

    // MARK: - Run

    private var runSection: some View {
        Section {
            if model.isRunning {
                Button(role: .destructive) {
                    model.cancel()
                } label: {
                    Label("Cancel", systemImage: "xmark.circle")
                }
            } else {
                Button {
                    model.upscale()
                } label: {
                    Label("Upscale", systemImage: "wand.and.stars")
                }
                .disabled(!model.canUpscale || !model.fits)
            }
            if model.isRunning || model.tilesTotal > 0 {
                ProgressView(value: model.progress) {
                    Text("Tile \(model.tilesDone) of \(model.tilesTotal)")
                        .font(.footnote)
                } currentValueLabel: {
                    if let ms = model.lastTileMs {
                        Text("last tile \(formatMs(ms))")
                            .font(.caption)
                    }
                }
            }
        }
    }

    // MARK: - Result

    private func resultSection(_ result: UpscaleResult) -> some View {
        Section {
            LabeledContent("Output", value: "\(result.width)x\(result.height)")
            LabeledContent("Per-tile median", value: formatMs(result.medianTileMs))
            LabeledContent("Total", value: formatMs(result.totalMs))
            LabeledContent("Tiles", value: "\(result.tileCount) of \(result.report.contract.tileW)x\(result.report.contract.tileH)")
            if result.report.kind == .coreML {
                LabeledContent("Compute units requested", value: result.report.units.label)
                LabeledContent("Planned ops", value: opPlacement(result.report))
            } else {
                LabeledContent("Runtime", value: result.report.engineLabel)
            }
            Button {
                model.saveToPhotos()
            } label: {
                Label("Save to Photos", systemImage: "square.and.arrow.down")
            }
            .disabled(model.isSaving)
            if let url = model.profileURL {
                ShareLink(item: url) {
                    Label("Share profile", systemImage: "square.and.arrow.up")
                }
            }
            if let line = model.saveLine {
                Text(line)
                    .font(.footnote)
                    .foregroundStyle(.secondary)
            }
        } header: {
            Text("Result")
        } footer: {
            if result.report.kind == .coreML {
                Text("The profile is seemore-mobile/coreml-profile/1 JSON: feed it to python mobile/profile.py --coreml-report.")
            }
        }
    }

    // MARK: - Status

    private var statusSection: some View {
        Section {
            Text(model.status)
                .font(.footnote)
            if let error = model.errorLine {
                Label(error, systemImage: "xmark.octagon")
                    .font(.footnote)
                    .foregroundStyle(.red)
            }
        }
    }

    /// "ANE 780 · GPU 3 · CPU 10" (MLComputePlan's preferred device per operation) or why there is none.
    private func opPlacement(_ report: LoadReport) -> String {
        guard report.plannedOps != nil else {
            return report.planNote ?? "not reported"
        }
        let counts = report.opCounts
        return [("ane", "ANE"), ("gpu", "GPU"), ("cpu", "CPU")]
            .map { key, label in "\(label) \(counts[key] ?? 0)" }
            .joined(separator: " · ")
    }
}

import CoreGraphics
import SwiftUI
import UIKit

/// Before / after with a draggable divider: the photo as the model saw it (nearest-neighbour, so its
/// pixels stay visible) on the left of the divider, the upscaled result on the right. Pinch to zoom
/// (MagnifyGesture), drag to pan, double-tap to reset; both sides move together.
struct CompareView: View {
    let before: CGImage?
    let after: CGImage?
    let scale: Int

    @State private var split: CGFloat = 0.5
    @State private var zoom: CGFloat = 1
    @State private var zoomAtStart: CGFloat = 1
    @State private var offset: CGSize = .zero
    @State private var offsetAtStart: CGSize = .zero

    private let maxZoom: CGFloat = 12
    private let handleHalfWidth: CGFloat = 22

    var body: some View {
        GeometryReader { geometry in
            let size = geometry.size
            ZStack {
                Color(uiColor: .secondarySystemBackground)
                if before == nil && after == nil {
                    ContentUnavailableView("No photo", systemImage: "photo",
                                           description: Text("Pick a photo, then upscale it"))
                } else {
                    images(size: size)
                    if after != nil && before != nil {
                        divider(size: size)
                    }
                    labels
                }
            }
            .frame(width: size.width, height: size.height)
            .clipped()
        }
        .onChange(of: before.map { ObjectIdentifier($0) }) { _, _ in
            reset()
        }
        .onChange(of: after.map { ObjectIdentifier($0) }) { _, _ in
            reset()
        }
    }

    @ViewBuilder
    private func images(size: CGSize) -> some View {
        ZStack {
            if let after {
                picture(after, smooth: true)
            } else if let before {
                picture(before, smooth: false)
            }
            if let before, after != nil {
                picture(before, smooth: false)
                    .mask(alignment: .leading) {
                        Rectangle().frame(width: max(0, size.width * split))
                    }
            }
        }
        .frame(width: size.width, height: size.height)
        .contentShape(Rectangle())
        .gesture(zoomAndPan(size: size))
        .onTapGesture(count: 2) {
            withAnimation(.easeOut(duration: 0.2)) { reset() }
        }
    }

    /// One side, fitted into the frame and moved by the shared zoom and pan. Both sides have the same
    /// aspect ratio (the output is exactly `scale` times the input), so they line up pixel for pixel.
    private func picture(_ image: CGImage, smooth: Bool) -> some View {
        Image(decorative: image, scale: 1)
            .resizable()
            .interpolation(smooth ? .high : .none)
            .aspectRatio(contentMode: .fit)
            .scaleEffect(zoom)
            .offset(offset)
    }

    private func divider(size: CGSize) -> some View {
        let x = size.width * split
        return ZStack {
            Rectangle()
                .fill(.white)
                .frame(width: 2, height: size.height)
                .shadow(radius: 2)
                .position(x: x, y: size.height / 2)
            Image(systemName: "arrow.left.and.right.circle.fill")
                .font(.system(size: 32))
                .foregroundStyle(.white, Color.accentColor)
                .shadow(radius: 3)
                .position(x: x, y: size.height / 2)
        }
        .frame(width: size.width, height: size.height)
        .contentShape(StripShape(centre: x, halfWidth: handleHalfWidth))
        .gesture(
            DragGesture(minimumDistance: 0)
                .onChanged { value in
                    split = min(max(value.location.x / max(size.width, 1), 0), 1)
                }
        )
        .accessibilityElement()
        .accessibilityLabel("Before and after divider")
        .accessibilityValue("\(Int((split * 100).rounded())) percent before")
        .accessibilityAdjustableAction { direction in
            switch direction {
            case .increment: split = min(split + 0.05, 1)
            case .decrement: split = max(split - 0.05, 0)
            @unknown default: break
            }
        }
    }

    private var labels: some View {
        VStack {
            HStack {
                if before != nil {
                    badge(after == nil ? "Photo" : "Before")
                }
                Spacer()
                if after != nil {
                    badge("After ×\(scale)")
                }
            }
            Spacer()
            if zoom > 1.01 {
                HStack {
                    Spacer()
                    badge(String(format: "%.1f×", zoom))
                }
            }
        }
        .padding(8)
        .allowsHitTesting(false)
    }

    private func badge(_ text: String) -> some View {
        Text(text)
            .font(.caption.weight(.semibold))
            .padding(.horizontal, 8)
            .padding(.vertical, 4)
            .background(.ultraThinMaterial, in: Capsule())
    }

    private func zoomAndPan(size: CGSize) -> some Gesture {
        let magnify = MagnifyGesture()
            .onChanged { value in
                zoom = min(max(zoomAtStart * value.magnification, 1), maxZoom)
                offset = clamped(offset, size: size)
            }
            .onEnded { _ in
                zoomAtStart = zoom
                offset = clamped(offset, size: size)
                offsetAtStart = offset
            }
        let pan = DragGesture()
            .onChanged { value in
                let moved = CGSize(width: offsetAtStart.width + value.translation.width,
                                   height: offsetAtStart.height + value.translation.height)
                offset = clamped(moved, size: size)
            }
            .onEnded { _ in
                offsetAtStart = offset
            }
        return magnify.simultaneously(with: pan)
    }

    /// Keeps the zoomed picture over the frame: at zoom z it may move (z - 1) / 2 of the frame each way.
    private func clamped(_ proposed: CGSize, size: CGSize) -> CGSize {
        let limitX = (zoom - 1) * size.width / 2
        let limitY = (zoom - 1) * size.height / 2
        return CGSize(width: min(max(proposed.width, -limitX), limitX),
                      height: min(max(proposed.height, -limitY), limitY))
    }

    private func reset() {
        zoom = 1
        zoomAtStart = 1
        offset = .zero
        offsetAtStart = .zero
    }
}

/// A full-height vertical strip around the divider: the only place the divider takes touches.
private struct StripShape: Shape {
    let centre: CGFloat
    let halfWidth: CGFloat

    func path(in rect: CGRect) -> Path {
        Path(CGRect(x: centre - halfWidth, y: rect.minY, width: 2 * halfWidth, height: rect.height))
    }
}

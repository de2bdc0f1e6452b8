package org.seemore.demo

import androidx.compose.foundation.Canvas
import androidx.compose.foundation.background
import androidx.compose.foundation.gestures.detectHorizontalDragGestures
import androidx.compose.foundation.gestures.detectTapGestures
import androidx.compose.foundation.gestures.detectTransformGestures
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.fillMaxHeight
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.offset
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.width
import androidx.compose.foundation.shape.RoundedCornerShape
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableFloatStateOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.draw.clipToBounds
import androidx.compose.ui.geometry.Offset
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.ImageBitmap
import androidx.compose.ui.graphics.drawscope.clipRect
import androidx.compose.ui.input.pointer.pointerInput
import androidx.compose.ui.layout.onSizeChanged
import androidx.compose.ui.platform.LocalDensity
import androidx.compose.ui.unit.IntOffset
import androidx.compose.ui.unit.IntSize
import androidx.compose.ui.unit.dp
import kotlin.math.max
import kotlin.math.min
import kotlin.math.roundToInt

private const val MAX_ZOOM = 16f

/**
 * Before/after comparison: [after] (the result) fills the view, [before] (the photo, scaled to
 * the same rectangle, i.e. to the output size) is drawn left of a vertical divider that is
 * dragged by its handle. Pinch to zoom about the fingers, drag to pan, double-tap to reset.
 * [before] is drawn with nearest-neighbour sampling once an LR pixel covers a screen pixel
 * or more, so what the network added is visible; [after] likewise per output pixel.
 */
@Composable
fun CompareView(before: ImageBitmap, after: ImageBitmap, scale: Int, modifier: Modifier = Modifier) {
    var zoom by remember(before, after) { mutableFloatStateOf(1f) }
    var offset by remember(before, after) { mutableStateOf(Offset.Zero) }
    var divider by remember(before, after) { mutableFloatStateOf(0.5f) } // fraction of the view width
    var viewSize by remember { mutableStateOf(IntSize.Zero) }
    val handleWidth = 48.dp
    val handlePx = with(LocalDensity.current) { handleWidth.toPx() }

    // Largest pan that keeps the image over the view (none while it is smaller than the view).
    fun clampOffset(candidate: Offset, z: Float): Offset {
        if (viewSize.width == 0 || viewSize.height == 0) return Offset.Zero
        val fit = min(viewSize.width.toFloat() / after.width, viewSize.height.toFloat() / after.height)
        val maxX = max(0f, (after.width * fit * z - viewSize.width) / 2f)
        val maxY = max(0f, (after.height * fit * z - viewSize.height) / 2f)
        return Offset(candidate.x.coerceIn(-maxX, maxX), candidate.y.coerceIn(-maxY, maxY))
    }

    Box(
        modifier
            .clipToBounds()
            .onSizeChanged { viewSize = it }
            .pointerInput(before, after) {
                detectTransformGestures { centroid, pan, gestureZoom, _ ->
                    val newZoom = (zoom * gestureZoom).coerceIn(1f, MAX_ZOOM)
                    val k = newZoom / zoom
                    // Keep the image point under the fingers' centroid where it is, then pan.
                    val c = centroid - Offset(size.width / 2f, size.height / 2f)
                    offset = clampOffset(c - (c - offset) * k + pan, newZoom)
                    zoom = newZoom
                }
            }
            .pointerInput(before, after) {
                detectTapGestures(
                    onDoubleTap = {
                        zoom = 1f
                        offset = Offset.Zero
                    },
                )
            },
    ) {
        Canvas(Modifier.fillMaxSize()) {
            val fit = min(size.width / after.width, size.height / after.height)
            val drawW = after.width * fit * zoom
            val drawH = after.height * fit * zoom
            val left = size.width / 2f + offset.x - drawW / 2f
            val top = size.height / 2f + offset.y - drawH / 2f
            val dstOffset = IntOffset(left.roundToInt(), top.roundToInt())
            val dstSize = IntSize(max(1, drawW.roundToInt()), max(1, drawH.roundToInt()))
            val afterScreenScale = drawW / after.width // screen px per drawn result px
            val beforeScreenScale = drawW / before.width // screen px per LR px
            drawImage(
                image = after,
                dstOffset = dstOffset,
                dstSize = dstSize,
                filterQuality = if (afterScreenScale >= 1f) FilterQuality.None else FilterQuality.Low,
            )
            val x = divider * size.width
            clipRect(left = 0f, top = 0f, right = x, bottom = size.height) {
                drawImage(
                    image = before,
                    dstOffset = dstOffset,
                    dstSize = dstSize,
                    filterQuality = if (beforeScreenScale >= 1f) FilterQuality.None else FilterQuality.Low,
                )
            }
            val line = 2.dp.toPx()
            drawLine(Color.White, Offset(x, 0f), Offset(x, size.height), strokeWidth = line)
            drawCircle(Color.White, radius = 14.dp.toPx(), center = Offset(x, size.height / 2f))
            drawCircle(Color.Black, radius = 10.dp.toPx(), center = Offset(x, size.height / 2f))
        }
        // The divider's handle: a strip over the line that takes horizontal drags.
        Box(
            Modifier
                .fillMaxHeight()
                .width(handleWidth)
                .offset { IntOffset((divider * viewSize.width - handlePx / 2f).roundToInt(), 0) }
                .pointerInput(Unit) {
                    detectHorizontalDragGestures { change, dragAmount ->
                        change.consume()
                        if (viewSize.width > 0) {
                            divider = (divider + dragAmount / viewSize.width).coerceIn(0f, 1f)
                        }
                    }
                },
        )
        Label("Before (photo)", Modifier.align(Alignment.TopStart))
        Label("After (SeemoRe x$scale)", Modifier.align(Alignment.TopEnd))
    }
}

@Composable
private fun Label(text: String, modifier: Modifier) {
    Text(
        text,
        style = MaterialTheme.typography.labelSmall,
        color = Color.White,
        modifier = modifier
            .padding(6.dp)
            .background(Color(0x99000000), RoundedCornerShape(4.dp))
            .padding(horizontal = 6.dp, vertical = 2.dp),
    )
}

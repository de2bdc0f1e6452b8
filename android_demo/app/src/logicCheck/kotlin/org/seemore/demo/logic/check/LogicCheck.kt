package org.seemore.demo.logic.check

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.system.exitProcess
import org.seemore.demo.logic.AppTiling
import org.seemore.demo.logic.Contract
import org.seemore.demo.logic.Json
import org.seemore.demo.logic.RowStitcher
import org.seemore.demo.logic.Window
import org.seemore.demo.logic.bandRows
import org.seemore.demo.logic.memoryBytes
import org.seemore.demo.logic.packTile
import org.seemore.demo.logic.packTileInto
import org.seemore.demo.logic.sourceRegion
import org.seemore.demo.logic.tilePlan

// The JVM checker of the app's plain-Kotlin logic (no Android needed):
//
//   java -jar logic.jar golden <dir>            recompute every case of <dir>/cases.json
//                                               (seemore.apps.golden.write_goldens) and compare
//   java -jar logic.jar contract <file.json>... parse contracts, one JSON line each
//
// Exit status 1 on any failure, 2 on bad usage.

private const val GOLDEN_FORMAT = "seemore-mobile/app-golden/1"

/** A difference between the logic and the golden files; the message is the one line printed. */
private class Mismatch(message: String) : Exception(message)

fun main(args: Array<String>) {
    if (args.size >= 2 && args[0] == "golden") {
        exitProcess(golden(File(args[1])))
    }
    if (args.size >= 2 && args[0] == "contract") {
        exitProcess(contracts(args.drop(1)))
    }
    System.err.println("usage: logic.jar golden <dir> | contract <file.json> ...")
    exitProcess(2)
}

private fun golden(dir: File): Int {
    val index = try {
        Json.parse(File(dir, "cases.json").readText())
    } catch (e: Exception) {
        println("FAIL cases.json: ${e.message}")
        return 1
    }
    if (index.string("format") != GOLDEN_FORMAT) {
        println("FAIL cases.json: format '${index.string("format")}', expected '$GOLDEN_FORMAT'")
        return 1
    }
    val count = index.size("cases")
    if (count == 0) {
        println("FAIL cases.json: no cases")
        return 1
    }
    var failures = 0
    for (i in 0 until count) {
        val key = "cases.$i"
        val name = try {
            index.string("$key.name")
        } catch (e: Exception) {
            "#$i"
        }
        try {
            val windows = checkCase(dir, index, key)
            println("ok $name windows=$windows")
        } catch (e: Mismatch) {
            println("FAIL $name: ${e.message}")
            failures += 1
        } catch (e: Exception) {
            println("FAIL $name: ${e.javaClass.simpleName}: ${e.message}")
            failures += 1
        }
    }
    return if (failures == 0) 0 else 1
}

private fun expectEqual(what: String, want: Any, got: Any) {
    if (want != got) {
        throw Mismatch("$what: golden $want, logic $got")
    }
}

/** Recomputes one case; returns its window count. */
private fun checkCase(dir: File, index: Json, key: String): Int {
    val height = index.int("$key.height")
    val width = index.int("$key.width")
    val tile = index.intList("$key.tiling.tile")
    val scale = index.int("$key.tiling.scale")
    val tiling = AppTiling(tile[0], tile[1], index.int("$key.tiling.overlap"), scale, index.string("$key.tiling.layout"))
    tiling.check()
    val plan = tilePlan(height, width, tiling)

    expectEqual("padded size", index.intList("$key.padded"), listOf(plan.paddedH, plan.paddedW))
    val windowCount = index.size("$key.windows")
    expectEqual("window count", windowCount, plan.windows.size)
    for (k in 0 until windowCount) {
        val w = plan.windows[k]
        val got = listOf(
            w.rows.start, w.rows.stop, w.rows.coreStart, w.rows.coreStop,
            w.cols.start, w.cols.stop, w.cols.coreStart, w.cols.coreStop
        )
        expectEqual("window $k", index.intList("$key.windows.$k"), got)
    }
    expectEqual("fade_half", index.int("$key.fade_half"), plan.fadeHalf ?: -1)
    expectEqual("memory_bytes", index.long("$key.memory_bytes"), memoryBytes(height, width, tiling))

    // The photo as Bitmap.getPixels would give it: ARGB ints from the RGBA bytes.
    val rgba = File(dir, index.string("$key.files.photo_rgba")).readBytes()
    expectEqual("photo bytes", height * width * 4, rgba.size)
    val argb = IntArray(height * width)
    for (p in argb.indices) {
        val r = rgba[4 * p].toInt() and 0xFF
        val g = rgba[4 * p + 1].toInt() and 0xFF
        val b = rgba[4 * p + 2].toInt() and 0xFF
        val a = rgba[4 * p + 3].toInt() and 0xFF
        argb[p] = (a shl 24) or (r shl 16) or (g shl 8) or b
    }

    val tileIn = 3 * tiling.tileH * tiling.tileW
    val tileOut = tileIn * scale * scale
    val inputs = floats(File(dir, index.string("$key.files.tile_inputs_f32")))
    val outputs = floats(File(dir, index.string("$key.files.tile_outputs_f32")))
    expectEqual("tile input floats", tileIn * windowCount, inputs.size)
    expectEqual("tile output floats", tileOut * windowCount, outputs.size)

    for (k in 0 until windowCount) {
        val window = plan.windows[k]
        compareFloats("tile input $k", inputs, k * tileIn, packTile(argb, height, width, window, tiling))
        compareFloats("tile input $k (from its source region)", inputs, k * tileIn, packFromRegion(argb, height, width, window, tiling))
    }

    // The stitcher, fed the recorded outputs as the model's.
    val stitcher = RowStitcher(plan, tiling)
    expectEqual("band rows", bandRows(plan, scale), stitcher.bandHeight)
    val outW = width * scale
    val outH = height * scale
    val image = ByteArray(outH * outW * 3)
    val wantFloats = floats(File(dir, index.string("$key.files.output_f32")))
    expectEqual("output floats", outH * outW * 3, wantFloats.size)
    stitcher.floatSink = { firstRow, values -> compareFloats("output floats from row $firstRow", wantFloats, firstRow * outW * 3, values) }
    var next = 0
    for (k in 0 until windowCount) {
        val rows = stitcher.add(outputs.copyOfRange(k * tileOut, (k + 1) * tileOut))
        if (stitcher.deepestBandRow >= stitcher.bandHeight) {
            throw Mismatch("window $k wrote band row ${stitcher.deepestBandRow}, band holds ${stitcher.bandHeight}")
        }
        if (rows.rowCount == 0) {
            continue
        }
        if (rows.firstRow != next) {
            throw Mismatch("window $k handed out rows from ${rows.firstRow}, expected row $next next")
        }
        if (rows.width != outW || rows.pixels.size != rows.rowCount * outW) {
            throw Mismatch("window $k handed out ${rows.pixels.size} pixels for ${rows.rowCount} rows of $outW")
        }
        if (next + rows.rowCount > outH) {
            throw Mismatch("window $k handed out rows up to ${next + rows.rowCount}, image has $outH")
        }
        for (p in rows.pixels.indices) {
            val px = rows.pixels[p]
            if ((px ushr 24) != 0xFF) {
                throw Mismatch("window $k: pixel $p has alpha ${px ushr 24}, not 255")
            }
            val o = (next * outW + p) * 3
            image[o] = (px shr 16).toByte()
            image[o + 1] = (px shr 8).toByte()
            image[o + 2] = px.toByte()
        }
        next += rows.rowCount
    }
    expectEqual("rows handed out", outH, next)
    val want = File(dir, index.string("$key.files.output_rgb")).readBytes()
    expectEqual("output bytes", outH * outW * 3, want.size)
    for (i in want.indices) {
        if (want[i] != image[i]) {
            val pixel = i / 3
            throw Mismatch(
                "output byte $i (row ${pixel / outW}, column ${pixel % outW}, channel ${i % 3}): " +
                    "golden ${want[i].toInt() and 0xFF}, logic ${image[i].toInt() and 0xFF}"
            )
        }
    }
    return windowCount
}

/** The app's path: only the window's source region is read from the photo, then packed. */
private fun packFromRegion(argb: IntArray, height: Int, width: Int, window: Window, tiling: AppTiling): FloatArray {
    val region = sourceRegion(window, height, width)
    val top = region[0]
    val left = region[1]
    val rows = region[2]
    val cols = region[3]
    val pixels = IntArray(rows * cols)
    for (y in 0 until rows) {
        System.arraycopy(argb, (top + y) * width + left, pixels, y * cols, cols)
    }
    val out = FloatArray(3 * tiling.tileH * tiling.tileW)
    packTileInto(pixels, top, left, cols, height, width, window, tiling, out)
    return out
}

private fun floats(file: File): FloatArray {
    val bytes = file.readBytes()
    if (bytes.size % 4 != 0) {
        throw Mismatch("${file.name} has ${bytes.size} bytes, not whole float32 values")
    }
    val out = FloatArray(bytes.size / 4)
    ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out)
    return out
}

private fun compareFloats(what: String, want: FloatArray, offset: Int, got: FloatArray) {
    for (i in got.indices) {
        val a = java.lang.Float.floatToRawIntBits(want[offset + i])
        val b = java.lang.Float.floatToRawIntBits(got[i])
        if (a != b) {
            throw Mismatch("$what differs at float $i: golden ${want[offset + i]}, logic ${got[i]}")
        }
    }
}

private fun contracts(paths: List<String>): Int {
    var failures = 0
    for (path in paths) {
        val file = File(path)
        try {
            val c = Contract(file.readText())
            val fields = listOf(
                "\"file\": " + Json.quote(file.name),
                "\"model\": " + Json.quote(c.model),
                "\"backend\": " + Json.quote(c.backend),
                "\"runtime\": " + Json.quote(c.runtime),
                "\"precision\": " + Json.quote(c.precision),
                "\"layout\": " + Json.quote(c.layout),
                "\"scale\": " + c.scale,
                "\"tile\": [" + c.tile[0] + ", " + c.tile[1] + "]",
                "\"overlap\": " + c.overlap,
                "\"input\": " + Json.quote(c.inputName),
                "\"output\": " + Json.quote(c.outputName),
                "\"artifact\": " + Json.quote(c.artifactPath)
            )
            println(fields.joinToString(", ", "{", "}"))
        } catch (e: Exception) {
            println("error $path: ${e.message}")
            failures += 1
        }
    }
    return if (failures == 0) 0 else 1
}

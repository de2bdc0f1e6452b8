package org.seemore.demo

import android.content.ContentResolver
import android.content.ContentValues
import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.media.MediaScannerConnection
import android.net.Uri
import android.os.Build
import android.os.Environment
import android.provider.MediaStore
import androidx.annotation.RequiresApi
import androidx.exifinterface.media.ExifInterface
import java.io.File
import java.io.FileOutputStream
import java.io.IOException
import java.io.OutputStream
import org.seemore.demo.logic.AppRuleException

/** Reading photos into ARGB_8888 bitmaps and saving results into the shared Pictures folder. */
object PhotoIO {

    /** Where results are saved, relative to the shared storage root. */
    const val FOLDER = "SeemoRe"

    /**
     * Decodes [uri] into a software ARGB_8888 bitmap, upright (EXIF orientation applied). Its own
     * color space is kept for display; Bitmap.getPixels hands the tiles sRGB values whatever it is.
     * [checkSize] is called with the upright (height, width) before the pixels are decoded; it
     * throws to refuse the photo (the memory check), so a photo too large is never decoded.
     */
    fun decode(resolver: ContentResolver, uri: Uri, checkSize: (Int, Int) -> Unit): Bitmap {
        val bitmap = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            decodeWithImageDecoder(resolver, uri, checkSize)
        } else {
            decodeWithBitmapFactory(resolver, uri, checkSize)
        }
        if (bitmap.config == Bitmap.Config.ARGB_8888) {
            return bitmap
        }
        // 16-bit / HDR sources decode as RGBA_F16: the model takes 8-bit values.
        val converted = bitmap.copy(Bitmap.Config.ARGB_8888, false)
            ?: throw AppRuleException("cannot convert the photo (${bitmap.config}) to 8-bit RGB")
        bitmap.recycle()
        return converted
    }

    @RequiresApi(Build.VERSION_CODES.P)
    private fun decodeWithImageDecoder(resolver: ContentResolver, uri: Uri, checkSize: (Int, Int) -> Unit): Bitmap {
        val source = ImageDecoder.createSource(resolver, uri)
        return try {
            // ImageDecoder applies the EXIF orientation itself; info.size is the upright size.
            ImageDecoder.decodeBitmap(source) { decoder, info, _ ->
                checkSize(info.size.height, info.size.width)
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
                decoder.isMutableRequired = false
            }
        } catch (e: ImageDecoder.DecodeException) {
            throw AppRuleException("cannot decode this photo: ${e.message?.lineSequence()?.firstOrNull().orEmpty()}")
        }
    }

    /** Android 8 (API 26-27): BitmapFactory, with the EXIF orientation applied by hand. */
    private fun decodeWithBitmapFactory(resolver: ContentResolver, uri: Uri, checkSize: (Int, Int) -> Unit): Bitmap {
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        openStream(resolver, uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw AppRuleException("cannot decode this photo (format not readable on Android ${Build.VERSION.RELEASE})")
        }
        val orientation = try {
            openStream(resolver, uri).use {
                ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
            }
        } catch (e: IOException) {
            ExifInterface.ORIENTATION_NORMAL
        }
        val swaps = orientation == ExifInterface.ORIENTATION_TRANSPOSE ||
            orientation == ExifInterface.ORIENTATION_ROTATE_90 ||
            orientation == ExifInterface.ORIENTATION_TRANSVERSE ||
            orientation == ExifInterface.ORIENTATION_ROTATE_270
        if (swaps) checkSize(bounds.outWidth, bounds.outHeight) else checkSize(bounds.outHeight, bounds.outWidth)
        val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        val decoded = openStream(resolver, uri).use { BitmapFactory.decodeStream(it, null, options) }
            ?: throw AppRuleException("cannot decode this photo")
        val matrix = Matrix()
        when (orientation) {
            ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> matrix.setScale(-1f, 1f)
            ExifInterface.ORIENTATION_ROTATE_180 -> matrix.setRotate(180f)
            ExifInterface.ORIENTATION_FLIP_VERTICAL -> matrix.setScale(1f, -1f)
            ExifInterface.ORIENTATION_TRANSPOSE -> {
                matrix.setRotate(90f)
                matrix.postScale(-1f, 1f)
            }
            ExifInterface.ORIENTATION_ROTATE_90 -> matrix.setRotate(90f)
            ExifInterface.ORIENTATION_TRANSVERSE -> {
                matrix.setRotate(-90f)
                matrix.postScale(-1f, 1f)
            }
            ExifInterface.ORIENTATION_ROTATE_270 -> matrix.setRotate(-90f)
            else -> return decoded
        }
        val upright = Bitmap.createBitmap(decoded, 0, 0, decoded.width, decoded.height, matrix, false)
        if (upright !== decoded) decoded.recycle()
        return upright
    }

    private fun openStream(resolver: ContentResolver, uri: Uri) =
        resolver.openInputStream(uri) ?: throw AppRuleException("cannot open the photo ($uri)")

    /**
     * Saves [bitmap] as PNG into Pictures/SeemoRe; returns where it went. Android 9 and older need
     * the WRITE_EXTERNAL_STORAGE permission (asked by the screen before calling this).
     */
    fun savePng(context: Context, bitmap: Bitmap, displayName: String): String {
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            return saveWithMediaStore(context, bitmap, displayName)
        }
        @Suppress("DEPRECATION")
        val pictures = Environment.getExternalStoragePublicDirectory(Environment.DIRECTORY_PICTURES)
        val dir = File(pictures, FOLDER)
        if (!dir.isDirectory && !dir.mkdirs()) {
            throw IOException("cannot create ${dir.path}")
        }
        val file = File(dir, displayName)
        try {
            FileOutputStream(file).use { writePng(bitmap, it) }
        } catch (e: IOException) {
            file.delete()
            throw e
        }
        MediaScannerConnection.scanFile(context, arrayOf(file.absolutePath), arrayOf("image/png"), null)
        return file.path
    }

    @RequiresApi(Build.VERSION_CODES.Q)
    private fun saveWithMediaStore(context: Context, bitmap: Bitmap, displayName: String): String {
        val resolver = context.contentResolver
        val values = ContentValues().apply {
            put(MediaStore.MediaColumns.DISPLAY_NAME, displayName)
            put(MediaStore.MediaColumns.MIME_TYPE, "image/png")
            put(MediaStore.MediaColumns.RELATIVE_PATH, "${Environment.DIRECTORY_PICTURES}/$FOLDER")
            put(MediaStore.MediaColumns.IS_PENDING, 1)
        }
        val collection = MediaStore.Images.Media.getContentUri(MediaStore.VOLUME_EXTERNAL_PRIMARY)
        val uri = resolver.insert(collection, values) ?: throw IOException("MediaStore refused the new picture")
        try {
            val stream = resolver.openOutputStream(uri) ?: throw IOException("cannot write $uri")
            stream.use { writePng(bitmap, it) }
            values.clear()
            values.put(MediaStore.MediaColumns.IS_PENDING, 0)
            resolver.update(uri, values, null, null)
        } catch (e: Exception) {
            resolver.delete(uri, null, null)
            throw e
        }
        return "${Environment.DIRECTORY_PICTURES}/$FOLDER/$displayName"
    }

    private fun writePng(bitmap: Bitmap, out: OutputStream) {
        if (!bitmap.compress(Bitmap.CompressFormat.PNG, 100, out)) {
            throw IOException("PNG encoding failed")
        }
    }
}

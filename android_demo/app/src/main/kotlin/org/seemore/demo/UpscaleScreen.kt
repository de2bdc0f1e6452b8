package org.seemore.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Build
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.safeDrawingPadding
import androidx.compose.material3.Button
import androidx.compose.material3.DropdownMenu
import androidx.compose.material3.DropdownMenuItem
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.text.style.TextOverflow
import androidx.compose.ui.unit.dp
import androidx.core.content.ContextCompat
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import androidx.lifecycle.viewmodel.compose.viewModel

/** The one screen: model, photo, progress, numbers, and the before/after comparison. */
@Composable
fun UpscaleScreen(viewModel: UpscaleViewModel = viewModel()) {
    val state by viewModel.state.collectAsStateWithLifecycle()
    val context = LocalContext.current
    val picker = rememberLauncherForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        viewModel.onPhotoPicked(uri)
    }
    val storagePermission = rememberLauncherForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) {
            viewModel.save()
        } else {
            viewModel.showError("Saving into Pictures needs the storage permission on Android 9 and older")
        }
    }
    val onSave = {
        val needsPermission = Build.VERSION.SDK_INT < Build.VERSION_CODES.Q &&
            ContextCompat.checkSelfPermission(context, Manifest.permission.WRITE_EXTERNAL_STORAGE) !=
            PackageManager.PERMISSION_GRANTED
        if (needsPermission) {
            storagePermission.launch(Manifest.permission.WRITE_EXTERNAL_STORAGE)
        } else {
            viewModel.save()
        }
    }
    val ready = state.loadInfo != null && !state.busy

    Column(
        Modifier
            .fillMaxSize()
            .safeDrawingPadding()
            .padding(horizontal = 12.dp, vertical = 8.dp),
        verticalArrangement = Arrangement.spacedBy(6.dp),
    ) {
        Text("SeemoRe super-resolution", style = MaterialTheme.typography.titleMedium)
        ModelRow(state, onSelect = viewModel::selectModel, onRefresh = { viewModel.refreshModels() })
        state.loadInfo?.let { InfoLine(it) }
        state.backends?.let { InfoLine(it) }
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(
                onClick = { picker.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly)) },
                enabled = ready,
            ) { Text("Pick photo") }
            OutlinedButton(onClick = viewModel::rerun, enabled = ready && state.canRerun) { Text("Run again") }
            OutlinedButton(onClick = onSave, enabled = state.result != null && !state.saving && !state.running) {
                Text(if (state.saving) "Saving…" else "Save")
            }
        }
        if (state.running && state.tilesTotal > 0) {
            LinearProgressIndicator(
                progress = { state.tilesDone.toFloat() / state.tilesTotal },
                modifier = Modifier.fillMaxWidth(),
            )
            InfoLine("tile ${state.tilesDone} of ${state.tilesTotal}")
        } else if (state.busy) {
            LinearProgressIndicator(modifier = Modifier.fillMaxWidth())
        }
        state.status?.let { InfoLine(it) }
        state.photoInfo?.let { InfoLine(it) }
        state.latency?.let { InfoLine(it) }
        state.previewNote?.let { InfoLine(it) }
        state.error?.let {
            Text(it, color = MaterialTheme.colorScheme.error, style = MaterialTheme.typography.bodyMedium)
        }
        state.notice?.let {
            Text(it, color = MaterialTheme.colorScheme.primary, style = MaterialTheme.typography.bodyMedium)
        }
        Box(
            Modifier
                .fillMaxWidth()
                .weight(1f),
            contentAlignment = Alignment.Center,
        ) {
            val photo = state.photo
            val preview = state.preview
            val scale = state.models.getOrNull(state.selected)?.contract?.scale ?: 1
            when {
                photo != null && preview != null -> {
                    val before = remember(photo) { photo.asImageBitmap() }
                    val after = remember(preview) { preview.asImageBitmap() }
                    CompareView(before, after, scale, Modifier.fillMaxSize())
                }
                photo != null -> Image(
                    bitmap = remember(photo) { photo.asImageBitmap() },
                    contentDescription = "the photo being upscaled",
                    modifier = Modifier.fillMaxSize(),
                    contentScale = ContentScale.Fit,
                )
                else -> Text(
                    if (ready) "Pick a photo to upscale it" else "",
                    style = MaterialTheme.typography.bodyMedium,
                )
            }
        }
    }
}

@Composable
private fun ModelRow(state: UiState, onSelect: (Int) -> Unit, onRefresh: () -> Unit) {
    var expanded by remember { mutableStateOf(false) }
    val label = state.modelTitle ?: if (state.models.isEmpty()) "No model found" else "Choose a model"
    Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        Box(Modifier.weight(1f)) {
            if (state.models.size > 1) {
                OutlinedButton(
                    onClick = { expanded = true },
                    enabled = !state.busy,
                    modifier = Modifier.fillMaxWidth(),
                ) {
                    Text(label, maxLines = 1, overflow = TextOverflow.Ellipsis, modifier = Modifier.weight(1f, fill = false))
                    Text(" ▾")
                }
                DropdownMenu(expanded = expanded, onDismissRequest = { expanded = false }) {
                    state.models.forEachIndexed { index, model ->
                        DropdownMenuItem(
                            text = { Text(if (model.problem == null) model.label else "${model.label} (cannot run)") },
                            onClick = {
                                expanded = false
                                onSelect(index)
                            },
                        )
                    }
                }
            } else {
                Text(label, style = MaterialTheme.typography.bodyLarge, maxLines = 2, overflow = TextOverflow.Ellipsis)
            }
        }
        TextButton(onClick = onRefresh, enabled = !state.busy) { Text("Refresh") }
    }
}

@Composable
private fun InfoLine(text: String) {
    Text(text, style = MaterialTheme.typography.bodySmall, maxLines = 2, overflow = TextOverflow.Ellipsis)
}

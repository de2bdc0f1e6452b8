"""Core ML ``.mlpackage`` files: evaluated anywhere through their MIL program, predicted by Core ML on macOS.

:meth:`CoreMLRunner.load` evaluates the package's MIL program op by op with
:mod:`seemore.runtime.mil` (any host with coremltools), so the parity harness checks the numbers
a package computes on Linux too. :meth:`CoreMLRunner.native_runs` gives Core ML's own prediction
(CPU only and all compute units) where it exists, on macOS.

Calling convention of every run function here: one tensor of the package's native input (its
shape and layout; for an image-typed input, float values 0..255 in NCHW, which is what Core ML's
image-to-tensor conversion hands the program, whose own ops then apply any scale and bias), and
the single output back as float32 (for an image-typed output, the program's output, 0..255).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seemore.runtime.base import RunFn, RuntimeUnavailable
from seemore.runtime.mil import WEIGHTS_DIR, MilError, MilProgram, load_mil_program

# Core ML specification version -> the deployment target that introduced it.
_DEPLOYMENT_TARGETS: dict[int, str] = {
    4: "iOS13", 5: "iOS14", 6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18", 10: "iOS26",
}


def _coremltools() -> Any:
    """coremltools, imported without its import-time warnings."""
    from seemore.toolchain_logs import import_coremltools

    return import_coremltools()


def _single_io(program: MilProgram) -> tuple[str, str]:
    """Names of the one input and one output of ``program`` (a runner's contract)."""
    if len(program.inputs) != 1 or len(program.outputs) != 1:
        raise RuntimeUnavailable(
            f"{program.package.name}: a runner needs one input and one output, "
            f"the program has {len(program.inputs)} and {len(program.outputs)}"
        )
    return next(iter(program.inputs)), next(iter(program.outputs))


def _weights_bytes(path: Path) -> int:
    """Size of the package's weight files (the blob the MIL consts point into)."""
    folder = path / WEIGHTS_DIR
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def native_unavailable() -> str | None:
    """Why Core ML's own prediction cannot run on this host, or ``None`` where it can."""
    if sys.platform != "darwin":
        return f"Core ML prediction needs macOS (coremltools.libcoremlpython is not available on {sys.platform})"
    try:
        _coremltools()
        import coremltools.libcoremlpython  # noqa: F401  (the native bridge to Core ML)
    except ImportError as exc:
        return f"Core ML prediction needs coremltools' native library ({exc})"
    return None


def _to_image(x: Tensor) -> Any:
    """A (1, 3, H, W) or (1, 1, H, W) tensor of values 0..255 as the PIL image (RGB or L) Core ML reads."""
    from PIL import Image

    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
        raise RuntimeUnavailable(f"an image input needs shape (1, 3, H, W) or (1, 1, H, W), got {list(x.shape)}")
    pixels = x[0].detach().float().round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    if pixels.shape[-1] == 1:
        return Image.fromarray(pixels[..., 0], mode="L")
    return Image.fromarray(pixels, mode="RGB")


def _from_image(image: Any) -> Tensor:
    """A PIL image returned by Core ML as a (1, C, H, W) float32 tensor of values 0..255."""
    import numpy as np

    if image.mode != "L":
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32)
    tensor = torch.from_numpy(array.copy())
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(-1)
    return tensor.permute(2, 0, 1).unsqueeze(0)


class CoreMLRunner:
    """Runner of ``.mlpackage`` files (see the module docstring)."""

    runtime = "coreml"
    # How load() evaluates a package (the parity report names it next to Core ML's own runs).
    evaluation = "the package's MIL program, evaluated op by op by seemore.runtime.mil (fp16 storage, float32 compute)"

    # Shared by every runner: the exporter's structure report and its check, then the harness,
    # each make their own runner for the same package.
    _programs: dict[tuple[Any, ...], MilProgram] = {}

    def _program(self, path: Path) -> MilProgram:
        """The package's program, read once while its files are unchanged (their sizes and mtimes)."""
        path = Path(path)
        files = [path / "Manifest.json", *sorted((path / "Data").rglob("*"))] if path.is_dir() else []
        key = (str(path.resolve()), *((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()))
        if key not in self._programs:
            CoreMLRunner._programs = {key: load_mil_program(path)}  # keep one: packages can be large
        return self._programs[key]

    def available(self, path: Path | None = None) -> str | None:
        """``None`` when coremltools is importable (the MIL program is then evaluated here); else why not.

        With ``path``, also why not when the package's program uses MIL ops that
        :mod:`seemore.runtime.mil` does not implement (the one-line list of them); a package
        that cannot be read at all is an error of :meth:`load`, not a missing runtime.
        """
        try:
            _coremltools()
        except ImportError:
            return "coremltools is not installed (pip install coremltools)"
        if path is None:
            return None
        try:
            self._program(path).check()
        except MilError as exc:
            return str(exc) if "not implemented" in str(exc) else None
        return None

    def load(self, path: Path) -> RunFn:
        """The package's MIL program, evaluated by :mod:`seemore.runtime.mil`, as a callable on one tensor.

        Raises :class:`MilError` (one line) for an unreadable package or an op this evaluator lacks.
        """
        program = self._program(path)
        program.check()  # fail at load, not on the first image
        input_name, output_name = _single_io(program)

        def run(x: Tensor) -> Tensor:
            return program.run({input_name: x})[output_name].float()

        return run

    def structure(self, path: Path) -> dict[str, Any]:
        """The keys of :mod:`seemore.runtime.base` for a package, plus what Core ML records of it.

        The whole program is one Core ML model: one partition, nothing outside it. Extra keys:
        ``mil_ops`` (op type -> count), ``input_type`` / ``output_type`` (``tensor`` or
        ``image``), ``compute_precision`` (``fp16``, ``fp32`` or ``mixed``),
        ``deployment_target`` (from the spec version) and ``weights_bytes``.
        """
        path = Path(path)
        program = self._program(path)
        input_name, output_name = _single_io(program)
        version = program.specification_version
        return {
            "partitions": 1,
            "ops_outside": 0,
            "backends": {"coreml": 1},
            "delegates": ["coreml"],
            "ops_outside_by_type": {},
            "input_shape": list(program.inputs[input_name].shape),
            "output_shape": list(program.outputs[output_name].shape),
            "mil_ops": program.op_counts(),
            "input_type": program.inputs[input_name].feature_type,
            "output_type": program.outputs[output_name].feature_type,
            "compute_precision": program.compute_precision(),
            "deployment_target": _DEPLOYMENT_TARGETS.get(version, f"specification version {version}"),
            "weights_bytes": _weights_bytes(path),
        }

    def native_runs(self, path: Path) -> tuple[dict[str, RunFn], str | None]:
        """Core ML's own prediction, CPU only and all compute units, where Core ML exists (macOS).

        Returns ``({"coreml-cpu-only": run, "coreml-all": run}, None)`` there, else ``({}, why)``.
        The run functions take and return tensors as :meth:`load`'s does.
        """
        reason = native_unavailable()
        if reason is not None:
            return {}, reason
        ct = _coremltools()
        path = Path(path)
        program = self._program(path)
        input_name, output_name = _single_io(program)
        image_in = program.inputs[input_name].feature_type == "image"
        image_out = program.outputs[output_name].feature_type == "image"
        runs: dict[str, RunFn] = {}
        for label, units in (("coreml-cpu-only", ct.ComputeUnit.CPU_ONLY), ("coreml-all", ct.ComputeUnit.ALL)):
            model = ct.models.MLModel(str(path), compute_units=units)
            runs[label] = _native_run(model, input_name, output_name, image_in, image_out,
                                      program.inputs[input_name].dtype)
        return runs, None


def _native_run(model: Any, input_name: str, output_name: str, image_in: bool, image_out: bool,
                input_dtype: str) -> RunFn:
    """A run function over ``MLModel.predict`` (dict of numpy arrays / PIL images in and out)."""
    import numpy as np

    # The multi-array is handed over in the dtype the model declares (fp16 programs take fp16).
    array_dtype = {"fp16": np.float16, "int32": np.int32}.get(input_dtype, np.float32)

    def run(x: Tensor) -> Tensor:
        feed = _to_image(x) if image_in else x.detach().float().contiguous().numpy().astype(array_dtype)
        result = model.predict({input_name: feed})[output_name]
        if image_out:
            return _from_image(result)
        return torch.from_numpy(np.array(result, dtype=np.float32))

    return run


__all__ = ["CoreMLRunner", "MilError", "native_unavailable"]

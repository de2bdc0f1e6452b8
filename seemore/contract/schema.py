"""The artifact contract: one typed, versioned record written beside every artifact.

Every exporter writes one (``<artifact>.json`` beside the file or directory it describes), and
the parity harness, the profiler and the demo apps read nothing else. Layout of version 3:

``format``, ``version``  ``seemore-mobile/contract``, 3 (version 3 added the spec's ``compression``,
                         ``io``, ``deployment_target`` and ``sizes``, for Core ML)
``kind``                 ``runtime`` (a deployable artifact) or ``quantized-program`` (a PT2E
                         ``.pt2`` that exporters lower INT8 artifacts from)
``artifact``             path (relative to the contract file), ``file``/``directory``, bytes,
                         SHA-256 (of the bytes, or of the tree for a directory: :func:`tree_sha256`)
``spec``                 backend, precision, runtime, fixed input shape, batch, scale, layout, I/O dtype,
                         weight compression, I/O kind (tensor / image), minimum OS, enumerated sizes
``inputs``, ``outputs``  name, shape, dtype, layout and value range of each tensor
``tiling``               the rule an app must follow for images of any size
                         (:func:`seemore.tiling.tiling_rule`)
``source``               model name and full config, checkpoint SHA-256, its path relative to the
                         contract (when it lies beside it) and its shipped name (when it is one)
``quantization``         INT8 only: method, quantizer, float-kept modules, the program it was
                         lowered from (relative path and SHA-256), the backend's reference
                         adjustment, the recipe
``tools``                versions of Python, torch, the export toolchain
``structure``            delegation / partitions / op list of the backend
``export_check``         what the exporter measured (artifact vs its torch model)
``parity``               what the parity harness measured (empty until it ran)

No absolute path is ever stored, so an artifact folder copied to a Mac or a device host stays
checkable. :meth:`ArtifactContract.validate` checks types, relative paths, hash formats and
that the I/O shapes follow from the spec; :meth:`from_json` validates.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata
import json
import math
import platform
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from seemore.contract.spec import ExportSpec, SpecError

CONTRACT_FORMAT = "seemore-mobile/contract"
CONTRACT_VERSION = 3
# The sidecar format of earlier releases, recognised so that it is reported, never misread.
LEGACY_FORMAT = "seemore-mobile/artifact/1"
KINDS: tuple[str, ...] = ("runtime", "quantized-program")
METHODS: tuple[str, ...] = ("ptq", "qat")
_SHA256 = re.compile(r"[0-9a-f]{64}")
TOOL_PACKAGES: tuple[str, ...] = (
    "seemore-mobile", "torch", "executorch", "torchao", "coremltools", "litert-torch", "ai-edge-litert",
    "onnxruntime", "numpy",
)


class ContractError(ValueError):
    """A contract that is malformed or does not describe its artifact; the message is one line."""


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ContractError(message)


def _relative(path: str, what: str) -> None:
    _need(isinstance(path, str) and path != "", f"{what} must be a non-empty path")
    pure = PurePosixPath(path)
    _need(not pure.is_absolute() and not re.match(r"^[A-Za-z]:", path),
          f"{what} {path!r} must be relative to the contract file")


def _sha(value: Any, what: str, optional: bool = False) -> None:
    if optional and value is None:
        return
    _need(isinstance(value, str) and bool(_SHA256.fullmatch(value)), f"{what} must be a hex SHA-256")


def tool_versions(packages: tuple[str, ...] = TOOL_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the toolchain (``None`` for a package that is absent)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def now_utc() -> str:
    """ISO time stamp (UTC, seconds) for ``created`` / ``checked_at``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class FileRecord:
    """A file or directory tree, by path relative to the contract file, size and SHA-256."""

    path: str
    kind: str
    bytes: int
    sha256: str

    def validate(self, what: str) -> None:
        """Raise :class:`ContractError` when malformed."""
        _relative(self.path, f"{what}.path")
        _need(self.kind in ("file", "directory"), f"{what}.kind must be file or directory, got {self.kind!r}")
        _need(isinstance(self.bytes, int) and self.bytes >= 0, f"{what}.bytes must be an integer >= 0")
        _sha(self.sha256, f"{what}.sha256")


@dataclass(frozen=True)
class TensorRecord:
    """One input or output tensor of an artifact."""

    name: str
    shape: list[int]
    dtype: str
    layout: str
    value_range: list[float]
    description: str = ""

    def validate(self, what: str) -> None:
        """Raise :class:`ContractError` when malformed."""
        _need(isinstance(self.name, str) and bool(self.name), f"{what}.name must be a non-empty string")
        _need(isinstance(self.shape, list) and all(isinstance(d, int) and d > 0 for d in self.shape),
              f"{what}.shape must be a list of positive integers")
        _need(isinstance(self.value_range, list) and len(self.value_range) == 2,
              f"{what}.value_range must be [low, high]")


@dataclass(frozen=True)
class SourceRecord:
    """The checkpoint an artifact was made from."""

    model: str
    config: dict[str, Any]
    sha256: str | None
    checkpoint: str | None = None
    shipped: str | None = None

    def validate(self) -> None:
        """Raise :class:`ContractError` when malformed."""
        _need(isinstance(self.model, str) and bool(self.model), "source.model must be a model name")
        _need(isinstance(self.config, dict), "source.config must be an object")
        _sha(self.sha256, "source.sha256", optional=True)
        if self.checkpoint is not None:
            _relative(self.checkpoint, "source.checkpoint")


@dataclass(frozen=True)
class QuantizationRecord:
    """How an INT8 program was made, and (for a lowered artifact) which program it came from."""

    method: str
    quantizer: str
    scheme: str
    float_modules: list[str]
    program: FileRecord | None = None
    reference_adjustment: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`ContractError` when malformed."""
        _need(self.method in METHODS, f"quantization.method must be one of {', '.join(METHODS)}")
        _need(isinstance(self.quantizer, str) and bool(self.quantizer), "quantization.quantizer must be a name")
        _need(isinstance(self.float_modules, list), "quantization.float_modules must be a list")
        if self.program is not None:
            self.program.validate("quantization.program")


def _from(cls: type, data: Any, what: str) -> Any:
    """Build a record dataclass from a JSON object, naming the field that is wrong."""
    _need(isinstance(data, dict), f"{what} must be an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    _need(not unknown, f"{what} has unknown fields {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ContractError(f"{what}: {exc}") from None


@dataclass
class ArtifactContract:
    """The contract of one artifact (see the module docstring for every field)."""

    kind: str
    spec: ExportSpec
    artifact: FileRecord
    inputs: list[TensorRecord]
    outputs: list[TensorRecord]
    tiling: dict[str, Any]
    source: SourceRecord
    quantization: QuantizationRecord | None = None
    tools: dict[str, Any] = field(default_factory=tool_versions)
    structure: dict[str, Any] = field(default_factory=dict)
    export_check: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now_utc)
    version: int = CONTRACT_VERSION
    format: str = CONTRACT_FORMAT

    def validate(self) -> "ArtifactContract":
        """Raise :class:`ContractError` on anything malformed or inconsistent; returns ``self``."""
        _need(self.format == CONTRACT_FORMAT, f"format must be {CONTRACT_FORMAT!r}, got {self.format!r}")
        _need(self.version == CONTRACT_VERSION,
              f"contract version {self.version} is not supported (this seemore-mobile reads {CONTRACT_VERSION})")
        _need(self.kind in KINDS, f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        _need(isinstance(self.spec, ExportSpec), "spec must be an export spec")
        self.artifact.validate("artifact")
        _need(len(self.inputs) == 1 and len(self.outputs) == 1, "inputs and outputs must hold one tensor each")
        for i, t in enumerate(self.inputs):
            t.validate(f"inputs[{i}]")
        for i, t in enumerate(self.outputs):
            t.validate(f"outputs[{i}]")
        _need(tuple(self.inputs[0].shape) == self.spec.input_shape,
              f"inputs[0].shape {self.inputs[0].shape} does not follow from the spec {list(self.spec.input_shape)}")
        _need(tuple(self.outputs[0].shape) == self.spec.output_shape,
              f"outputs[0].shape {self.outputs[0].shape} does not follow from the spec {list(self.spec.output_shape)}")
        _need(isinstance(self.tiling, dict) and self.tiling.get("tile") == [self.spec.height, self.spec.width],
              "tiling.tile must equal the spec's fixed input size")
        self.source.validate()
        if self.spec.precision == "int8":
            _need(self.quantization is not None, "an INT8 artifact needs a quantization record")
        if self.quantization is not None:
            self.quantization.validate()
        for name in ("tools", "structure", "export_check", "parity"):
            _need(isinstance(getattr(self, name), dict), f"{name} must be an object")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out = dataclasses.asdict(self)
        out["spec"] = self.spec.to_dict()
        return out

    def to_json(self) -> str:
        """Indented, key-sorted JSON text (what is written beside the artifact)."""
        return json.dumps(jsonable(self.to_dict()), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> "ArtifactContract":
        """Build and validate a contract from a parsed JSON object; :class:`ContractError` if malformed."""
        _need(isinstance(data, dict), f"a contract must be a JSON object, got {type(data).__name__}")
        if data.get("format") == LEGACY_FORMAT:
            raise ContractError("an old sidecar (format seemore-mobile/artifact/1): export the artifact again")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        _need(not unknown, f"unknown fields {', '.join(unknown)}")
        missing = sorted(n for n in ("kind", "spec", "artifact", "inputs", "outputs", "tiling", "source")
                         if n not in data)
        _need(not missing, f"missing fields {', '.join(missing)}")
        try:
            spec = ExportSpec.from_dict(data["spec"])
        except (SpecError, TypeError) as exc:
            raise ContractError(f"spec: {exc}") from None
        _need(isinstance(data["inputs"], list) and isinstance(data["outputs"], list),
              "inputs and outputs must be lists")
        quant = data.get("quantization")
        if quant is not None:
            _need(isinstance(quant, dict), "quantization must be an object")
            quant = dict(quant)
            if quant.get("program") is not None:
                quant["program"] = _from(FileRecord, quant["program"], "quantization.program")
            quant = _from(QuantizationRecord, quant, "quantization")
        fields = {k: v for k, v in data.items() if k not in ("spec", "artifact", "inputs", "outputs", "source",
                                                            "quantization")}
        try:
            contract = cls(
                spec=spec,
                artifact=_from(FileRecord, data["artifact"], "artifact"),
                inputs=[_from(TensorRecord, t, f"inputs[{i}]") for i, t in enumerate(data["inputs"])],
                outputs=[_from(TensorRecord, t, f"outputs[{i}]") for i, t in enumerate(data["outputs"])],
                source=_from(SourceRecord, data["source"], "source"),
                quantization=quant,
                **fields,
            )
        except TypeError as exc:
            raise ContractError(str(exc)) from None
        return contract.validate()

    @classmethod
    def from_json(cls, text: str) -> "ArtifactContract":
        """Parse and validate contract JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as strings (``"inf"``) and tensors/NumPy scalars as numbers.

    JSON has no infinity, and a bit-exact parity is a real result (PSNR = inf).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def io_records(spec: ExportSpec) -> tuple[list[TensorRecord], list[TensorRecord]]:
    """The input and output tensor records every artifact of ``spec`` has."""
    if spec.io == "image":
        # Core ML image types: the shape is the tensor the image becomes inside the program.
        return (
            [TensorRecord("lr", list(spec.input_shape), "uint8", "image", [0.0, 255.0],
                          "low-resolution RGB image (an 8-bit RGB/BGRA pixel buffer); the model divides by 255")],
            [TensorRecord("sr", list(spec.output_shape), "uint8", "image", [0.0, 255.0],
                          f"x{spec.scale} RGB image; the model scales to [0, 255] and clamps")],
        )
    lr = TensorRecord(
        "lr", list(spec.input_shape), spec.io_dtype, spec.layout, [0.0, 1.0],
        "low-resolution RGB, values in [0, 1] (8-bit value / 255), no mean subtraction",
    )
    sr = TensorRecord(
        "sr", list(spec.output_shape), spec.io_dtype, spec.layout, [0.0, 1.0],
        f"x{spec.scale} RGB, nominally in [0, 1] but not clamped: clamp, x255 and round for 8-bit",
    )
    return [lr], [sr]

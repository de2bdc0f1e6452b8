"""The PT2E quantizer of each backend, with the modules every backend keeps in float.

A program must be trained and calibrated with the quantizer it will be lowered with: each
backend puts its quantize/dequantize pairs in different places. Every quantizer here keeps the
deploy form's :data:`~seemore.deploy.FLOAT_MODULES` in float and quantizes every conv:
static int8 (or uint8) activations, per-channel symmetric int8 weights.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from seemore.deploy import FLOAT_MODULES

QUANT_BACKENDS: tuple[str, ...] = ("xnnpack", "coreml", "litert")


class QuantizeError(RuntimeError):
    """Quantization cannot proceed (unavailable backend, bad settings, wrong program); one-line message."""


def xnnpack_quantizer(is_qat: bool = False, fp32_modules: Sequence[type[nn.Module]] = FLOAT_MODULES) -> Any:
    """The XNNPACK PT2E quantizer: per-channel symmetric int8 weights, static int8 activations.

    ``fp32_modules`` stay in float (default :data:`seemore.deploy.FLOAT_MODULES`, which says why).
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return _symmetric(XNNPACKQuantizer(), get_symmetric_quantization_config, is_qat, fp32_modules)


def _symmetric(quantizer: Any, config: Callable[..., Any], is_qat: bool,
               fp32_modules: Sequence[type[nn.Module]] = FLOAT_MODULES) -> Any:
    """``quantizer`` (XNNPACK's or litert-torch's, which share this API) set to per-channel symmetric
    int8 weights and static activations, with ``fp32_modules`` left in float."""
    quantizer.set_global(config(is_per_channel=True, is_qat=is_qat))
    for module_type in fp32_modules:
        quantizer.set_module_type(module_type, None)
    return quantizer


def module_type_name(module_type: type[nn.Module]) -> str:
    """How ``torch.export`` names a module type in a node's ``nn_module_stack`` (``seemore.deploy.form.ResidualAdd``)."""
    return f"{module_type.__module__}.{module_type.__qualname__}"


def _coreml_quantizer(is_qat: bool) -> Any:
    """Core ML's PT2E quantizer: int8 symmetric per-channel weights, 8-bit activations.

    The same configuration serves PTQ and QAT (its observers are FakeQuantize modules
    with moving-average min/max that act as plain observers under ``prepare_pt2e``).
    """
    del is_qat
    from seemore.toolchain_logs import import_coremltools

    import_coremltools()  # first, quietly: the imports below would print its Linux warnings
    from coremltools.optimize.torch.quantization.quantization_config import (
        LinearQuantizerConfig,
        ModuleLinearQuantizerConfig,
    )
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

    global_config = ModuleLinearQuantizerConfig(
        quantization_scheme="symmetric",
        activation_dtype=torch.quint8,
        weight_dtype=torch.qint8,
        weight_per_channel=True,
    )
    # None = leave FLOAT_MODULES in float (router, top-k mask, LayerNorm, residual adds, the
    # context upsample), as for XNNPACK. CoreMLQuantizer's type filter looks each key up among
    # the types in a node's nn_module_stack, which torch.export (2.13) records as qualified-name
    # strings, so the keys are those names: a class key matches no node (programs made before
    # this was found quantized every FLOAT_MODULES op, and the matmul context upsample then
    # failed calibration with an observer on its Python-float scale).
    types: dict[Any, None] = {module_type_name(t): None for t in FLOAT_MODULES}
    config = LinearQuantizerConfig(global_config=global_config, module_type_configs=types)

    class CachedPatternCoreMLQuantizer(CoreMLQuantizer):  # type: ignore[misc, valid-type]
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            with _coreml_pattern_cache():
                return super().annotate(model)

    return CachedPatternCoreMLQuantizer(config)


# The pattern builders of ExecuTorch's CoreMLQuantizer (its _coreml_quantizer_utils), memoised.
_COREML_PATTERN_BUILDERS = ("get_binary_op_act_pattern", "get_conv_pattern", "get_conv_bn_pattern",
                            "get_linear_pattern", "get_linear_bn_pattern")
_pattern_cache: dict[tuple[Any, ...], torch.fx.GraphModule] = {}


def _memoised(name: str, builder: Callable[..., torch.fx.GraphModule]) -> Callable[..., torch.fx.GraphModule]:
    """``builder`` building each pattern once; every call gets its own copy, because the
    subgraph matcher rewrites the output node of the pattern it is given."""

    def build(*args: Any, **kwargs: Any) -> torch.fx.GraphModule:
        key = (name, args, tuple(sorted(kwargs.items())))
        if key not in _pattern_cache:
            _pattern_cache[key] = builder(*args, **kwargs)
        return copy.deepcopy(_pattern_cache[key])

    return build


@contextlib.contextmanager
def _coreml_pattern_cache() -> Iterator[None]:
    """Build each of CoreMLQuantizer's match patterns once instead of once per use.

    Its annotators rebuild every (op, activation) pattern with ``torch.export`` for every
    quantization config they apply (the global one and each module-type one): on the deploy
    form that was minutes of pattern exports per ``prepare_pt2e``, most of PTQ's time. A pattern
    depends only on the builder's arguments (ops, activation, conv rank), so each one is built
    once per process while annotation runs.
    """
    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as utils

    originals = {name: getattr(utils, name) for name in _COREML_PATTERN_BUILDERS}
    for name, builder in originals.items():
        setattr(utils, name, _memoised(name, builder))
    try:
        yield
    finally:
        for name, builder in originals.items():
            setattr(utils, name, builder)


class _FunctionAsModule(nn.Module):
    """Wraps a pattern function so that ``torch.export`` (which now wants a Module) accepts it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


@contextlib.contextmanager
def _litert_pattern_shim() -> Iterator[None]:
    """Let litert-torch's QAT-only conv+BN annotators build their match patterns.

    litert-torch 0.10 hands a plain function to torchao's pattern exporter, which calls
    ``torch.export.export`` on it; torch 2.13 rejects non-Modules there. Wrapping the
    function in a Module exports the same graph. SeemoRe has no BatchNorm, so these
    patterns match nothing here; the shim only lets annotation run to the end.
    """
    import litert_torch.quantize.pt2e_quantizer_utils as utils

    original = utils._get_aten_graph_module_for_pattern

    def patched(pattern: Any, example_inputs: Any, is_cuda: bool = False, **kwargs: Any) -> Any:
        if not isinstance(pattern, nn.Module):
            pattern = _FunctionAsModule(pattern)
        return original(pattern, example_inputs, is_cuda, **kwargs)

    utils._get_aten_graph_module_for_pattern = patched
    try:
        yield
    finally:
        utils._get_aten_graph_module_for_pattern = original


def _litert_quantizer(is_qat: bool) -> Any:
    """litert-torch's PT2E quantizer (int8 per-channel weights, int8 activations), QAT-shimmed."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    class ShimmedPT2EQuantizer(PT2EQuantizer):  # type: ignore[misc, valid-type]
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            with _litert_pattern_shim():
                return super().annotate(model)

    return _symmetric(ShimmedPT2EQuantizer(), get_symmetric_quantization_config, is_qat)


def _histogram_activation_ranges(quantizer: Any) -> Any:
    """Give a QAT quantizer's activation fake-quantizers PTQ's histogram observer, in place.

    The stock QAT configuration tracks a moving average of min/max, whose ranges are wider
    than the histogram's error-minimising ones: on the shipped x4 model, QAT from them only
    climbed back to PTQ's accuracy. Calibrated with a histogram and then frozen
    (:func:`train_qat`), QAT starts where PTQ is and the weights adapt to those ranges.
    """
    from torchao.quantization.pt2e import HistogramObserver
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize

    config = quantizer.global_config
    histogram = dataclasses.replace(
        config.input_activation,
        observer_or_fake_quant_ctr=FakeQuantize.with_args(observer=HistogramObserver, eps=2**-12),
    )
    quantizer.set_global(dataclasses.replace(config, input_activation=histogram, output_activation=histogram))
    return quantizer


def _xnnpack_quantizer(is_qat: bool) -> Any:
    quantizer = xnnpack_quantizer(is_qat=is_qat)
    return _histogram_activation_ranges(quantizer) if is_qat else quantizer


_QUANTIZERS: dict[str, tuple[Callable[[bool], Any], str]] = {
    "xnnpack": (
        _xnnpack_quantizer,
        "XNNPACKQuantizer (executorch): per-channel symmetric int8 weights, static int8 activations",
    ),
    "coreml": (
        _coreml_quantizer,
        "CoreMLQuantizer (executorch/coremltools): per-channel symmetric int8 weights, uint8 activations",
    ),
    "litert": (
        _litert_quantizer,
        "litert-torch PT2EQuantizer: per-channel symmetric int8 weights, int8 activations",
    ),
}


def backend_quantizer(backend: str, is_qat: bool) -> Any:
    """The PT2E quantizer of ``backend`` (``xnnpack``, ``coreml`` or ``litert``).

    The module types of :data:`seemore.deploy.FLOAT_MODULES` (router, top-k mask, channel
    LayerNorm, residual additions) stay in float on every backend; it says why. Raises
    :class:`QuantizeError` naming the missing package when a backend's toolchain is
    not importable.
    """
    if backend not in _QUANTIZERS:
        raise QuantizeError(f"unknown backend {backend!r}; choose from {', '.join(QUANT_BACKENDS)}")
    factory, _ = _QUANTIZERS[backend]
    try:
        return factory(is_qat)
    except ImportError as exc:
        raise QuantizeError(f"{backend}: quantizer unavailable here ({exc.name or exc} is not importable)") from None


def quantizer_description(backend: str) -> str:
    """One-line description of ``backend``'s quantization scheme (recorded in contracts)."""
    return _QUANTIZERS[backend][1]


def float_module_names() -> list[str]:
    """Names of the module types every quantizer keeps in float (recorded in contracts)."""
    return [m.__name__ for m in FLOAT_MODULES]

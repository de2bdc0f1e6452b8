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
import inspect
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
            with _coreml_annotation_shortcuts(model):
                return super().annotate(model)

    return CachedPatternCoreMLQuantizer(config)


# The pattern builders of ExecuTorch's CoreMLQuantizer (its _coreml_quantizer_utils).
_COREML_PATTERN_BUILDERS = ("get_binary_op_act_pattern", "get_conv_pattern", "get_conv_bn_pattern",
                            "get_linear_pattern", "get_linear_bn_pattern")
_pattern_cache: dict[tuple[Any, ...], torch.fx.GraphModule] = {}


def _call_targets(graph: torch.fx.Graph) -> set[Any]:
    """The operators a graph calls (what a subgraph matcher compares, literals ignored)."""
    return {n.target for n in graph.nodes if n.op == "call_function"}


def _unmatchable() -> None:
    """The one operator of a stand-in pattern: no model calls it, so the stand-in matches nothing."""


def _unmatchable_pattern() -> torch.fx.GraphModule:
    """A stand-in for a pattern that cannot match the model being annotated (not built)."""
    graph = torch.fx.Graph()
    graph.output(graph.call_function(_unmatchable, (graph.placeholder("input"),)))
    return torch.fx.GraphModule(nn.Module(), graph)


@contextlib.contextmanager
def _coreml_annotation_shortcuts(model: torch.fx.GraphModule) -> Iterator[None]:
    """Run CoreMLQuantizer's annotation on ``model`` without its two wastes; the result is the same.

    Its annotators try 405 (op, activation, in-place, conv rank) patterns per quantization config
    (the global one and each module-type one), and for each try they first export the pattern
    with ``torch.export`` and then clean and recompile the whole model: on the deploy form,
    minutes per ``prepare_pt2e``. Here every pattern is built at most once per process (a
    pattern depends only on the builder's arguments), the model is cleaned once, and a pattern
    that calls an operator the model never calls (the matcher compares call targets, so it
    cannot match) is neither tried nor built: its parts (the op without the activation, and the
    activation) are built and looked up first, and the rest is a stand-in that matches nothing.
    """
    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as utils

    model.graph.eliminate_dead_code()
    model.recompile()
    present = _call_targets(model.graph)
    builders = {name: getattr(utils, name) for name in _COREML_PATTERN_BUILDERS}
    annotators = {name: getattr(utils, name)
                  for name in ("annotate_weighted_mod_pattern", "annotate_binary_op_act_pattern")}

    def built(name: str, *args: Any) -> torch.fx.GraphModule:
        key = (name, *args)
        if key not in _pattern_cache:
            _pattern_cache[key] = builders[name](*args)
        return _pattern_cache[key]

    def activation_targets(act_fn: Callable[..., Any], in_place: bool) -> set[Any]:
        with_act = built("get_binary_op_act_pattern", torch.add, act_fn, in_place)
        return _call_targets(with_act.graph) - _call_targets(built("get_binary_op_act_pattern", torch.add).graph)

    def shortcut(name: str) -> Callable[..., torch.fx.GraphModule]:
        signature = inspect.signature(builders[name])

        def build(*args: Any, **kwargs: Any) -> torch.fx.GraphModule:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            act_fn, in_place = values.pop("act_fn"), values.pop("act_in_place")
            base = built(name, *values.values())
            if not _call_targets(base.graph) <= present or (
                    act_fn is not None and not activation_targets(act_fn, in_place) <= present):
                return _unmatchable_pattern()
            full = base if act_fn is None else built(name, *values.values(), act_fn, in_place)
            return copy.deepcopy(full)  # a copy per call: the subgraph matcher rewrites its pattern

        return build

    def guarded(annotate: Callable[..., Any]) -> Callable[..., Any]:
        def annotate_if_matchable(model: torch.fx.GraphModule, pattern_gm: torch.fx.GraphModule,
                                  *args: Any, **kwargs: Any) -> Any:
            if not _call_targets(pattern_gm.graph) <= present:
                return []
            return annotate(model, pattern_gm, *args, **kwargs)

        return annotate_if_matchable

    originals = {**builders, **annotators}
    for name in builders:
        setattr(utils, name, shortcut(name))
    for name, annotate in annotators.items():
        setattr(utils, name, guarded(annotate))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(utils, name, original)


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

    quantizer = _symmetric(ShimmedPT2EQuantizer(), get_symmetric_quantization_config, is_qat)
    # litert-torch's module-type filter tests ``type in [types of the node's nn_module_stack]``,
    # and torch.export (2.13) records those types as qualified-name strings (CoreMLQuantizer's
    # bug, above): a class key matches no node, so the router, the top-k mask (int8 MINIMUM, which
    # LiteRT's XNNPACK delegate does not take), the LayerNorms and the residual adds were
    # quantized. The name keys match.
    for module_type in FLOAT_MODULES:
        quantizer.set_module_type(module_type_name(module_type), None)
    return quantizer


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

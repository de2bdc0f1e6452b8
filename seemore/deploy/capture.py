"""Capture of the deploy form with ``torch.export``: the first step of every backend and of PT2E.

:func:`export_program` gives the graph at an artifact's fixed shape (layout, dtype, batch from
its :class:`~seemore.contract.spec.ExportSpec`); :func:`capture_for_quantization` gives one
graph with dynamic batch, height and width that PTQ/QAT calibrate and train on real images of
any size.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.export import Dim, ExportedProgram

from seemore.contract.spec import ExportSpec
from seemore.deploy.form import DeploySeemoRe
from seemore.model import SeemoRe


class ChannelsLastIO(nn.Module):
    """Wrap an NCHW model so that it takes and returns NHWC tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def deploy_form(model: nn.Module, backend: str | None = None) -> nn.Module:
    """The module to export: a reference :class:`SeemoRe` becomes :class:`DeploySeemoRe`.

    ``backend`` picks the backend's rewrites (:data:`~seemore.deploy.form.CONTEXT_UPSAMPLE`:
    the matmul context upsample for ``coreml``); ``None`` is the default form. Other modules
    (a deploy model, built for whichever backend, a quantized GraphModule from
    ``convert_pt2e``) are returned unchanged.
    """
    if isinstance(model, SeemoRe):
        return DeploySeemoRe.from_reference(model, backend)
    return model


def io_module(model: nn.Module, spec: ExportSpec) -> nn.Module:
    """``model`` (deploy form or quantized program) with the spec's I/O dtype and layout.

    This is exactly what an artifact computes, as a torch module: the reference every
    parity comparison runs in the artifact's own I/O. A reference model becomes the deploy
    form of ``spec.backend``.
    """
    module = deploy_form(model, spec.backend)
    if not isinstance(module, torch.fx.GraphModule):
        module = module.eval()
        if spec.torch_io_dtype != torch.float32:
            # A copy: the caller's model keeps its dtype.
            module = copy.deepcopy(module).to(spec.torch_io_dtype)
    if spec.layout == "NHWC":
        module = ChannelsLastIO(module)
    return module


def export_program(model: nn.Module, spec: ExportSpec) -> ExportedProgram:
    """Capture ``model`` for ``spec``: deploy form, eval mode, fixed input shape and dtype.

    The result has the spec's static input shape; NHWC specs get a permute on each side,
    which delegates fuse into their layout handling.
    """
    spec.check_model(model)
    with torch.no_grad():
        return torch.export.export(io_module(model, spec), (spec.example_input(),), strict=False)


def capture_for_quantization(model: nn.Module, spec: ExportSpec) -> torch.fx.GraphModule:
    """Export the deploy form with dynamic batch, height and width, ready for ``prepare_pt2e``.

    Calibration (and QAT) then runs on real images of any size and any batch; the
    converted model is exported again at the spec's fixed shape by the lowering step.
    Height and width must be at least twice the model's minimum input size: below that
    the stride-4 context branch shrinks to one pixel and export specialises the graph.
    The example batch is 2: with batch 1 export would fix the batch dimension. A reference
    model becomes the deploy form of ``spec.backend``.
    """
    spec.check_model(model)
    module = deploy_form(model, spec.backend).eval()
    cfg = getattr(module, "config", None)
    smallest = 2 * (cfg.min_input_size if cfg is not None else 16)
    example = torch.full((2, 3, max(smallest, 32), max(smallest, 32)), 0.5)
    dims = {
        0: Dim("batch", min=1, max=1024),
        2: Dim("height", min=smallest, max=8192),
        3: Dim("width", min=smallest, max=8192),
    }
    return torch.export.export(module, (example,), dynamic_shapes=({**dims},), strict=False).module()

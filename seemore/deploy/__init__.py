"""The export-friendly form of SeemoRe and its capture with ``torch.export``.

* :mod:`seemore.deploy.form` - :class:`DeploySeemoRe`: exact, delegate-friendly rewrites that
  load the reference weights (and the module types INT8 keeps in float, :data:`FLOAT_MODULES`;
  the per-backend rewrites, :data:`CONTEXT_UPSAMPLE`)
* :mod:`seemore.deploy.capture` - the deploy form as an ``ExportedProgram`` at an artifact's
  fixed shape, or with dynamic shapes for quantization
"""

from seemore.deploy.form import (
    CONTEXT_UPSAMPLE,
    FLOAT_MODULES,
    ContextUpsample,
    ConvLayerNorm2d,
    DeployGatedFFN,
    DeployMoEBlock,
    DeployMoELayer,
    DeployPreNormExpertBlock,
    DeploySeemoRe,
    DeployStripedConvFormer,
    ResidualAdd,
    TopKRoutingMask,
    bilinear_matrix,
    context_upsample_mode,
    convert_state_dict,
    deploy_res_group,
    moe_layers,
    pointwise_gelu,
    shuffle_permutation,
    step_stages,
)

__all__ = [
    "CONTEXT_UPSAMPLE",
    "FLOAT_MODULES",
    "ContextUpsample",
    "ConvLayerNorm2d",
    "DeployGatedFFN",
    "DeployMoEBlock",
    "DeployMoELayer",
    "DeployPreNormExpertBlock",
    "DeploySeemoRe",
    "DeployStripedConvFormer",
    "ResidualAdd",
    "TopKRoutingMask",
    "bilinear_matrix",
    "context_upsample_mode",
    "convert_state_dict",
    "deploy_res_group",
    "moe_layers",
    "pointwise_gelu",
    "shuffle_permutation",
    "step_stages",
]

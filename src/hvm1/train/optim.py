"""The parameter groups of the published recipes, from what the model says about itself.

Pretraining (the published MAE code's `add_weight_decay`): weight decay on every parameter except the 1-D
ones (biases, norms) and those whose name ends in `.bias`; the position embeddings, `cls_token`,
`decoder_cls_token` and `mask_token` are 3-D and are decayed. Finetuning (the published `param_groups_lrd`):
1-D parameters and the model's `no_weight_decay()` (the CLS token and position embeddings) are exempt, and
each parameter's lr is scaled by `layer_decay ** (top - layer)` with the layer from the model's
`layer_ids()`. A group is `{"names": [...], "weight_decay": ..., "lr_scale": ...}`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from hvm1.models import VideoViT


def pretraining_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups, decayed and exempt, as published for pretraining (see the module doc)."""
    decay: list[str] = []
    exempt: list[str] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (exempt if parameter.ndim == 1 or name.endswith(".bias") else decay).append(name)
    return [
        {"names": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"names": exempt, "weight_decay": 0.0, "lr_scale": 1.0},
    ]


def finetuning_param_groups(model: VideoViT, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """Groups per (layer, decayed or exempt) with layer-wise lr decay, as published for finetuning (see the
    module doc): the top layer (final norm and head) keeps the full lr, the embeddings get the smallest."""
    layers = model.layer_ids()
    top = max(layers.values())
    exempt_names = model.no_weight_decay()
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim == 1 or name in exempt_names
        group = groups.setdefault((layers[name], exempt), {
            "names": [], "weight_decay": 0.0 if exempt else weight_decay,
            "lr_scale": layer_decay ** (top - layers[name]),
        })
        group["names"].append(name)
    return [groups[key] for key in sorted(groups)]

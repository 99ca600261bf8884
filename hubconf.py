"""torch.hub entry points: `torch.hub.load(REPO, 'load_model', 'vit_hvm1@448_none')`, or one entry point per
published model (`@448` spelled `_448`, `-` spelled `_`): `torch.hub.load(REPO, 'vit_hvm1_448_ssv2_50shot')`.

Works from a clone (`torch.hub.load('/path/to/clone', ..., source='local')`) without installing the package.
"""

import sys
from pathlib import Path as _Path

dependencies = ["torch", "huggingface_hub", "safetensors"]

sys.path.insert(0, str(_Path(__file__).resolve().parent / "src"))

from hvm1.zoo import get_available_models, load_model  # noqa: E402


def _hub_name(name: str) -> str:
    """The entry-point name of a zoo model: a Python identifier (`vit_hvm1@448_none` -> `vit_hvm1_448_none`)."""
    return name.replace("@", "_").replace("-", "_")


def _entry_point(name: str):
    def entry_point(pretrained: bool = True, **kwargs):
        return load_model(name, pretrained=pretrained, **kwargs)

    entry_point.__name__ = entry_point.__qualname__ = _hub_name(name)
    entry_point.__doc__ = (
        f"The HVM-1 model {name!r} (weights downloaded from the hub once, then cached); `kwargs` go to "
        f"`hvm1.load_model` (device, dtype, model_type, revision, cache_dir, config overrides)."
    )
    return entry_point


globals().update({_hub_name(name): _entry_point(name) for name in get_available_models()})

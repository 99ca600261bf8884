"""Reading and writing weights: safe, lazy, strict, with every key rule in one place.

A checkpoint is one of
- the published training format: a dict with `model` (the state dict), `optimizer`, `epoch`, `scaler`, `args`
  (an `argparse.Namespace`); also a dict with `model_state`, or a bare state dict;
- a `.safetensors` file written by `save_safetensors` (or `hvm1 convert`), whose metadata holds the full config.

Loading never unpickles arbitrary objects (`torch.load(weights_only=True)`, only `argparse.Namespace` allowed),
memory-maps the file so the optimizer state (two thirds of a published file) is never read, builds the model on
the meta device and assigns the file's tensors to it: no random initialisation that the weights overwrite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import pickle
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import write_atomically
from .labels import CLASS_NAMES_METADATA_KEY, class_names_from_json, class_names_to_json
from .models import CONFIG_CLASSES, MAEConfig, VideoMAE, VideoViT, ViTConfig, build_model
from .models.configs import ARCHITECTURES, DECODER, heads_for_width

logger = logging.getLogger(__name__)

CONFIG_METADATA_KEY = "hvm1_config"
MODEL_TYPE_METADATA_KEY = "hvm1_model_type"
# Where a training checkpoint keeps the model's state dict, in the order they are looked for.
WEIGHTS_KEYS = ("model", "model_state", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unsafe, corrupt, or not matching the architecture. Names the file."""


@dataclass
class CheckpointContents:
    """What a checkpoint file holds, with the model tensors memory-mapped (nothing else materialised).

    state_dict: the model's tensors as stored; config: the full config a converted file carries (else None);
    model_type: 'vit' or 'mae' when the file says so; args: the training arguments (published format);
    metadata: a `.safetensors` file's string metadata (including what `save_safetensors(metadata=...)` added).
    """

    path: Path
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None = None
    model_type: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def _refusal_detail(error: Exception) -> str:
    text = str(error)
    match = re.search(r"Unsupported global: ([^\n]+)", text)
    return match.group(1).strip() if match else text.strip().splitlines()[0]


# The first bytes of each format a checkpoint may be in.
ZIP_SIGNATURE = b"PK\x03\x04"  # torch.save since PyTorch 1.6: a zip archive
PICKLE_PROTOCOLS = range(2, 6)  # legacy torch.save: a pickle stream, b"\x80" then the protocol number
SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors format's own limit on its JSON header, in bytes


def checkpoint_format(path: str | os.PathLike) -> str:
    """The format of a checkpoint file from its first bytes, whatever its name.

    Args:
        path: the file.

    Returns:
        'zip' (`torch.save`), 'pickle' (`torch.save` before PyTorch 1.6) or 'safetensors' (an 8-byte header
        length, then JSON).

    Raises:
        CheckpointError: anything else (a text file, an image, an empty file), or a file that cannot be
            opened; the file is named.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError as error:  # permissions, a file that vanished, an I/O error: still this file's failure
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if head[:4] == ZIP_SIGNATURE:
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS:
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < SAFETENSORS_MAX_HEADER:
        return "safetensors"
    seen = f"its first bytes are {head[:8]!r}" if head else "it is empty"
    raise CheckpointError(
        f"{path} is not a PyTorch or safetensors checkpoint ({seen}; expected a zip archive, a pickle stream "
        f"or a safetensors header)"
    )


def _load_pickled(path: Path, mmap: bool) -> Any:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"refused to load {path}: unpickling it would construct objects other than tensors and "
                f"argparse.Namespace ({_refusal_detail(error)}); hvm1 never runs such code. If you trust the "
                f"file, load it with torch.load(weights_only=False) and save its state dict with torch.save"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt pickle data ({error})") from None
    except Exception as error:  # anything a damaged file makes the reader raise is that file's failure
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'})"
        ) from None


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def read_payload(path: str | os.PathLike) -> Any:
    """Everything a `torch.save` checkpoint holds (a training checkpoint's model, optimizer state, counters),
    read safely and memory-mapped: a tensor's bytes are read when it is first used, not before.

    Args:
        path: the `torch.save` file.

    Returns:
        What the file holds, tensors memory-mapped.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: an unsafe, truncated or corrupt file, or a `.safetensors` file (weights only: no
            training state); the file is named.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    kind = checkpoint_format(path)
    if kind == "safetensors":
        raise CheckpointError(f"{path} is a safetensors file: it holds weights only, no training state")
    return _load_pickled(path, mmap=kind == "zip")  # the legacy format cannot be memory-mapped


def read_checkpoint(path: str | os.PathLike) -> CheckpointContents:
    """Read a checkpoint file's model tensors (memory-mapped), stored config and training args.

    Args:
        path: the file.

    Returns:
        Its `CheckpointContents`.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: an unsafe, corrupt or unrecognised file.
    """
    path = Path(path)
    if path.is_file() and checkpoint_format(path) == "safetensors":
        return _read_safetensors(path)
    obj = read_payload(path)
    if _is_state_dict(obj):
        return CheckpointContents(path=path, state_dict=dict(obj))
    if isinstance(obj, Mapping):
        for key in WEIGHTS_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                args = obj.get("args")
                args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
                return CheckpointContents(path=path, state_dict=dict(obj[key]), args=args)
        keys = ", ".join(map(str, list(obj)[:10]))
        raise CheckpointError(f"{path} holds no model weights: expected a 'model' state dict, found keys {keys}")
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or state dict")


def _read_safetensors(path: Path) -> CheckpointContents:
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            state_dict = {key: f.get_tensor(key) for key in f.keys()}
        config = json.loads(metadata[CONFIG_METADATA_KEY]) if CONFIG_METADATA_KEY in metadata else None
    except Exception as error:  # SafetensorError, OSError, a broken JSON config, ...: the file's failure
        raise CheckpointError(f"cannot read {path}: the file is truncated or corrupt ({error})") from None
    return CheckpointContents(
        path=path,
        state_dict=state_dict,
        config=config,
        model_type=metadata.get(MODEL_TYPE_METADATA_KEY),
        metadata=metadata,
    )


# ---- key rules: the only ways a stored key may be renamed or dropped -------------------------------------


@dataclass(frozen=True)
class KeyRule:
    """A named rule that drops stored keys that don't fit the model being built, and may make new ones.

    `drops(key)` says which stored keys the rule may drop when the model has no such key or one of another
    shape; `makes(model, missing, generator)` returns tensors for the model's keys still `missing` after the
    drops (None: the rule makes nothing). A rule with `opt_in` applies only when a load names it in `rules`.
    """

    name: str
    applies_to: str  # the model type being built
    drops: Callable[[str], bool]
    makes: Callable[[torch.nn.Module, set[str], torch.Generator], dict[str, torch.Tensor]] | None = None
    opt_in: bool = False


def _fresh_head(model: torch.nn.Module, missing: set[str], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The published init of a new classification head: weight normal(0, 0.02), bias as `nn.Linear` makes it
    (uniform in +-1/sqrt(fan_in))."""
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear) or not {"head.weight", "head.bias"} & missing:
        return {}
    classes, width = head.weight.shape
    bound = 1 / math.sqrt(width)
    weight = torch.empty(classes, width).normal_(0.0, 0.02, generator=generator)
    bias = torch.empty(classes).uniform_(-bound, bound, generator=generator)
    return {key: value for key, value in (("head.weight", weight), ("head.bias", bias)) if key in missing}


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers
FRESH_HEAD = "fresh-head"
KEY_RULES = (
    KeyRule(
        "vit-from-mae drops the decoder and mask token",
        "vit",
        lambda key: key.startswith("decoder") or key == "mask_token",
    ),
    # Finetuning asks for it: a head that is missing or of another class count is replaced by a new one.
    KeyRule(FRESH_HEAD, "vit", lambda key: key in ("head.weight", "head.bias"), makes=_fresh_head, opt_in=True),
)
RULE_NAMES = tuple(rule.name for rule in KEY_RULES)


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rule 'unwrap': remove the prefixes DDP (`module.`) and torch.compile (`_orig_mod.`) add to keys.

    Args:
        state_dict: the tensors by key.

    Returns:
        The same tensors, keys without the prefixes.
    """
    out = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def stored_model_type(contents: CheckpointContents) -> str:
    """'mae' when the file holds a decoder (or says so), else 'vit'.

    Args:
        contents: what `read_checkpoint` read.

    Returns:
        'mae' or 'vit'.
    """
    if contents.model_type:
        return contents.model_type
    keys = strip_wrapper_prefixes(contents.state_dict)
    return "mae" if any(k.startswith("decoder") or k == "mask_token" for k in keys) else "vit"


# ---- architecture: from overrides, stored config, args, tensor shapes, size table -------------------------


def _count_blocks(keys: list[str], prefix: str) -> int | None:
    indices = {int(m.group(1)) for k in keys if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(indices) + 1 if indices else None


def config_from_shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The config fields the tensor shapes determine (image size, frames, tubelet, patch, widths, depths, ...).

    Args:
        state_dict: the tensors by key.

    Returns:
        The fields they determine, by name.
    """
    sd = strip_wrapper_prefixes(state_dict)
    keys = list(sd)
    out: dict[str, Any] = {}
    if "patch_embed.proj.weight" in sd:
        dim, chans, u, p, _ = sd["patch_embed.proj.weight"].shape
        out.update(embed_dim=dim, in_chans=chans, t_patch_size=u, patch_size=p)
        if "pos_embed_spatial" in sd:
            side = round(sd["pos_embed_spatial"].shape[1] ** 0.5)
            out["img_size"] = side * p
        if "pos_embed_temporal" in sd:
            out["num_frames"] = sd["pos_embed_temporal"].shape[1] * u
        out["sep_pos_embed"] = "pos_embed_spatial" in sd
        out["cls_embed"] = "cls_token" in sd
    if (depth := _count_blocks(keys, "blocks")) is not None:
        out["depth"] = depth
        out["qkv_bias"] = "blocks.0.attn.q.bias" in sd
        if "blocks.0.mlp.fc1.weight" in sd and "embed_dim" in out:
            out["mlp_ratio"] = sd["blocks.0.mlp.fc1.weight"].shape[0] / out["embed_dim"]
    out["num_classes"] = sd["head.weight"].shape[0] if "head.weight" in sd else 0
    if "decoder_embed.weight" in sd:
        out["decoder_embed_dim"] = sd["decoder_embed.weight"].shape[0]
    if (decoder_depth := _count_blocks(keys, "decoder_blocks")) is not None:
        out["decoder_depth"] = decoder_depth
    if "decoder_pred.weight" in sd and {"patch_size", "in_chans", "num_frames"} <= out.keys():
        pred_u = sd["decoder_pred.weight"].shape[0] // (out["patch_size"] ** 2 * out["in_chans"])
        out["pred_t_dim"] = pred_u * out["num_frames"] // out["t_patch_size"]
    return out


def shape_config(contents: CheckpointContents) -> dict[str, Any]:
    """`config_from_shapes` of a file's tensors; tensors of shapes no model has are a `CheckpointError`.

    Args:
        contents: what `read_checkpoint` read.

    Returns:
        The fields the shapes determine, by name.

    Raises:
        CheckpointError: tensors of shapes no model has.
    """
    try:
        return config_from_shapes(contents.state_dict)
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as error:
        raise CheckpointError(f"{contents.path} holds tensors of shapes no hvm1 model has ({error})") from None


def check_overrides(overrides: Mapping[str, Any] | None, config_type: type[ViTConfig]) -> dict[str, Any]:
    """`overrides` as a dict once each key is a field of `config_type`; the one place overrides of a
    config are checked.

    Args:
        overrides: config fields by name, or None.
        config_type: the config class they are for.

    Returns:
        The overrides as a dict.

    Raises:
        ValueError: unknown keys (listed, with the valid fields).
    """
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(config_type)}
    if unknown := sorted(set(overrides) - fields):
        raise ValueError(f"unknown config field(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return overrides


def resolve_config(
    contents: CheckpointContents, model_type: str, overrides: Mapping[str, Any] | None = None
) -> ViTConfig:
    """The architecture of `contents` built as `model_type`: each field from, in order, `overrides`, the stored
    config, the training args, the tensor shapes, the named architecture in args (`model`) and, for head
    counts, the size table: the MAE decoder's for a 512-wide decoder, else the named size of exactly that
    width.

    Args:
        contents: what `read_checkpoint` read.
        model_type: 'vit' or 'mae'.
        overrides: config fields that win over everything the file says.

    Returns:
        The config.

    Raises:
        CheckpointError: a field still unknown (named).
        ValueError: an override that is no config field.
    """
    cls = CONFIG_CLASSES[model_type]
    fields = {f.name for f in dataclasses.fields(cls)}
    overrides = check_overrides(overrides, MAEConfig)  # a ViT from an MAE file may be given decoder fields too
    named = ARCHITECTURES.get(str(contents.args.get("model", "")))
    sources = [overrides, contents.config or {}, contents.args, shape_config(contents)]
    if named is not None:
        sources.append({k: v for k, v in named.to_dict().items() if k in ("num_heads", "decoder_num_heads")})
    values: dict[str, Any] = {}
    for source in reversed(sources):  # later sources have lower priority
        values.update({k: v for k, v in source.items() if k in fields})
    if "decoder_num_heads" in fields and values.get("decoder_embed_dim") == DECODER["decoder_embed_dim"]:
        values.setdefault("decoder_num_heads", DECODER["decoder_num_heads"])  # the HVM-1 decoder of every MAE
    for head_field, width_field in (("num_heads", "embed_dim"), ("decoder_num_heads", "decoder_embed_dim")):
        if head_field in fields and head_field not in values and width_field in values:
            if (heads := heads_for_width(values[width_field])) is not None:
                values[head_field] = heads
    required = {"img_size", "patch_size", "num_frames", "t_patch_size", "embed_dim", "depth", "num_heads"}
    if model_type == "mae":
        required |= {"decoder_embed_dim", "decoder_depth", "decoder_num_heads", "pred_t_dim"}
    if missing := sorted(required - values.keys()):
        hint = ", ".join(f"{name}=..." for name in missing)
        raise CheckpointError(
            f"cannot tell {', '.join(missing)} for {contents.path} (not in the file, its args or its tensor "
            f"shapes, and the width matches no named size); pass them, e.g. load_model(path, {hint}) or "
            f"--set {missing[0]}=..."
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the architecture read from {contents.path} is invalid: {error}") from None


# ---- loading ------------------------------------------------------------------------------------------------


def _fit_state_dict(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    model_type: str,
    path: Path,
    rules: Collection[str] = (),
    seed: int = 0,
    report: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    state_dict = strip_wrapper_prefixes(state_dict)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    active = [r for r in KEY_RULES if r.applies_to == model_type and (not r.opt_in or r.name in rules)]
    kept: dict[str, torch.Tensor] = {}
    dropped: dict[str, list[str]] = {}
    for key, value in state_dict.items():
        fits = expected.get(key) == tuple(value.shape)
        rule = next((r for r in active if not fits and r.drops(key)), None)
        if rule is None:
            kept[key] = value
        else:
            dropped.setdefault(rule.name, []).append(key)
    made: dict[str, list[str]] = {}
    generator = torch.Generator().manual_seed(seed)
    for rule in active:
        if rule.makes is not None:
            new = rule.makes(model, expected.keys() - kept.keys(), generator)
            kept |= new
            if new:
                made[rule.name] = sorted(new)
    for name in dict.fromkeys([*dropped, *made]):
        actions = []
        if name in dropped:
            actions.append("dropped " + _keys_with_shapes(dropped[name], state_dict))
        if name in made:
            actions.append("made " + _keys_with_shapes(made[name], kept))
        line = f"{path.name}: rule '{name}' {' and '.join(actions)}"
        logger.info("%s", line)
        if report is not None:
            report.append(line)
    missing = sorted(expected.keys() - kept.keys())
    unexpected = sorted(kept.keys() - expected.keys())
    mismatched = [
        f"{k} {tuple(kept[k].shape)} (model {expected[k]})"
        for k in sorted(expected.keys() & kept.keys())
        if tuple(kept[k].shape) != expected[k]
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"wrong shapes: {', '.join(mismatched)}")
        raise CheckpointError(f"{path} does not fit the {model_type} architecture; " + "; ".join(parts))
    return kept


def _keys_with_shapes(keys: list[str], tensors: Mapping[str, torch.Tensor]) -> str:
    if len(keys) > 4:
        return f"{len(keys)} keys"
    return ", ".join(f"{key} {tuple(tensors[key].shape)}" for key in keys)


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """The torch dtype `dtype` names ('float32', 'bfloat16', torch.float16, ...); None is float32.

    Args:
        dtype: a dtype or its name; None means float32.

    Returns:
        The dtype.

    Raises:
        ValueError: Not a floating-point dtype the models take.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"unknown floating-point dtype {dtype!r}; use float32, bfloat16 or float16")
    return resolved


def load_checkpoint(
    path: str | os.PathLike | CheckpointContents,
    *,
    pretrained: bool = True,
    model_type: str | None = None,
    config: ViTConfig | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    rules: Collection[str] = (),
    seed: int = 0,
    report: list[str] | None = None,
    **config_overrides: Any,
) -> VideoViT | VideoMAE:
    """Build the model a checkpoint file describes and load its weights; see `hvm1.load_model`.

    Args:
        path: the file, or its `read_checkpoint` contents (for a caller that reads the file's other contents
            too, its preprocessing, and should not unpickle it twice).
        pretrained: False builds the architecture only.
        model_type: 'vit' builds the encoder alone from an MAE checkpoint; None: what the file holds.
        config: fixes the architecture (a zoo entry); the file's tensors must then fit it exactly, up to the
            key rules.
        device: where the weights go (default: the CPU, memory-mapped).
        dtype: the weights' dtype (default float32).
        rules: the opt-in key rules to apply (e.g. 'fresh-head').
        seed: the seed of the tensors a rule makes.
        report: a list that gets a line per rule that applied.
        **config_overrides: architecture fields.

    Returns:
        The model, in eval mode.

    Raises:
        CheckpointError: the file is no checkpoint, or its tensors don't fit the architecture (the keys
            listed).
    """
    if model_type not in (None, "vit", "mae"):
        raise ValueError(f"model_type must be 'vit', 'mae' or None, got {model_type!r}")
    dtype = as_dtype(dtype)
    device = torch.device(device or "cpu")
    if pretrained and device.type == "meta":
        raise ValueError("device='meta' builds an empty model: pass pretrained=False with it")
    if unknown := sorted(set(rules) - set(RULE_NAMES)):
        raise ValueError(f"unknown key rule(s) {', '.join(unknown)}; the rules are {', '.join(RULE_NAMES)}")
    contents = path if isinstance(path, CheckpointContents) else read_checkpoint(path)
    stored_type = stored_model_type(contents)
    model_type = model_type or stored_type
    if model_type == "mae" and stored_type == "vit":
        raise CheckpointError(f"{contents.path} holds a ViT (no decoder); it cannot be loaded as an MAE")
    if config is None:
        config = resolve_config(contents, model_type, config_overrides)
    elif config_overrides:
        config = config.replace(**check_overrides(config_overrides, type(config)))
    if not pretrained:
        model = build_model(config, device=device)
        return attach_class_names(model, recorded_class_names(contents)).to(dtype).eval()
    model = build_model(config, device="meta")
    state_dict = _fit_state_dict(model, contents.state_dict, model_type, contents.path, rules, seed, report)
    model.load_state_dict(state_dict, strict=True, assign=True)
    # Tensors stay memory-mapped from the file (copy-on-write) unless the dtype or device asks for a copy.
    return attach_class_names(model, recorded_class_names(contents)).to(device=device, dtype=dtype).eval()


def recorded_class_names(contents: CheckpointContents) -> tuple[str, ...] | None:
    """The class names a file records (a `.safetensors` file's metadata from `hvm1 convert`, or the args of a
    `hvm1 finetune` checkpoint), or None.

    Args:
        contents: what `read_checkpoint` read.

    Returns:
        The names, in head order, or None.
    """
    recorded = contents.metadata.get(CLASS_NAMES_METADATA_KEY) or contents.args.get(CLASS_NAMES_METADATA_KEY)
    return class_names_from_json(recorded) if recorded else None


def attach_class_names(model: Any, names: Sequence[str] | None) -> Any:
    """Give a ViT `names` as its `class_names` when there is one per output of its head (a head replaced by
    one of another class count keeps none); returns the model.

    Args:
        model: a loaded model.
        names: the class names, or None.

    Returns:
        `model`.
    """
    if isinstance(model, VideoViT) and names is not None and len(names) == model.config.num_classes:
        model.class_names = tuple(names)
    return model


def save_safetensors(
    model: torch.nn.Module,
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a model's weights and full config to a `.safetensors` file, atomically.

    `load_model(path)` then needs no overrides; a ViT's `class_names` are recorded too, and
    `load_model(path).class_names` reads them back.

    Args:
        model: a `VideoViT` or `VideoMAE`.
        path: the file to write (replaced atomically if it exists).
        dtype: the weights' dtype in the file (default: as the model holds them); bfloat16 halves the file.
        metadata: string entries added to the file's metadata (e.g. the zoo's preprocessing).

    Returns:
        The path written.
    """
    path = Path(path)
    config = getattr(model, "config", None)
    if not isinstance(config, ViTConfig):
        raise ValueError(f"expected an hvm1 VideoViT or VideoMAE, got {type(model).__name__}")
    target = as_dtype(dtype) if dtype is not None else None
    tensors = {k: (v.to(target) if target else v).contiguous() for k, v in model.state_dict().items()}
    names = getattr(model, "class_names", None)
    metadata = {
        **({CLASS_NAMES_METADATA_KEY: class_names_to_json(names)} if names is not None else {}),
        **(metadata or {}),
        "format": "pt",
        CONFIG_METADATA_KEY: json.dumps(config.to_dict()),
        MODEL_TYPE_METADATA_KEY: "mae" if isinstance(config, MAEConfig) else "vit",
    }
    return write_atomically(path, lambda handle: save_file(tensors, handle.name, metadata=metadata))

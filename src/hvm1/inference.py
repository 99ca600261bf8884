"""Inference transforms: a built model prepared, from outside `hvm1.models`, for the precision it will run at.

The models are plain PyTorch (`nn.Linear` layers called as modules) and know nothing of devices or kernels.
`prepare_for_inference(model, precision)` is what the commands apply to a loaded model before running it
under `precision.autocast(device)`:

- fp32: nothing changes.
- bf16 on a CPU with oneDNN (every x86 build of PyTorch): each `nn.Linear` is swapped for a `PackedLinear`
  holding the same parameters, whose weight is packed once in oneDNN's blocked bf16 layout
  (`pack_linear_layers`). oneDNN multiplies by a weight it has reordered into its own layout faster than by
  the plain (out, in) matrix, which autocast casts and oneDNN reorders again at every call; the products are
  the same, bit for bit (`benchmarks/bench_packing.py` measures the difference). By default the first
  inference call any of the model's layers serves packs them all (`when="first_use"`: nothing is paid by a
  model that never runs), several layers at once, one per CPU core, each packed by one thread (`pack_layers`);
  `when="now"` packs them while preparing, and `when="ahead"` starts packing them in the background while
  preparing, so that what the caller does before its first call (the commands: decoding the first video)
  hides the packing; that first call waits for whatever is left. The commands pack ahead
  (`precision_for_run`).
  The parameters stay as they are (float32, memory-mapped from the checkpoint file) and so does
  `state_dict()`: same keys, same tensors.
- elsewhere (fp16, CUDA, MPS, builds without oneDNN): the linear layers' weights and biases are cast to the
  precision's dtype once, in place. Autocast would cast them at every call; these are the same values cast
  once, so the results are identical in half the memory.

Other parameters (LayerNorms, position embeddings, tokens, the patch projection) stay float32 either way.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Iterable
from queue import Empty, SimpleQueue

import torch
import torch.nn.functional as F
from torch import nn

from .devices import Precision, resolve_precision
from .progress import SILENT, Progress

logger = logging.getLogger(__name__)


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place version counter; None for an inference tensor (made under `inference_mode`),
    which keeps none (and can be changed in place only inside `inference_mode`)."""
    return None if tensor.is_inference() else tensor._version


def _stamp(layer: nn.Linear) -> tuple:
    """What a packed copy must match: the layer's weight and bias objects, versions and storage."""
    return tuple((p, _version(p), p.data_ptr()) if p is not None else None for p in (layer.weight, layer.bias))


def _same(one: tuple | None, other: tuple) -> bool:
    return one is not None and all(
        (a is None and b is None) or (a is not None and b is not None and a[0] is b[0] and a[1:] == b[1:])
        for a, b in zip(one, other)
    )


def _dropped() -> None:
    """What a `PackedWeight` becomes when copied or unpickled: nothing (see `PackedWeight.__reduce__`)."""
    return None


class PackedWeight:
    """A `PackedLinear`'s packed copy: `weight` in oneDNN's layout, `bias` in the packed dtype, and `stamp`, the
    identity, version and storage of the parameters they were made from."""

    __slots__ = ("weight", "bias", "stamp")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stamp: tuple) -> None:
        self.weight, self.bias, self.stamp = weight, bias, stamp

    def __reduce__(self):
        # oneDNN's packed tensors have no storage to copy or save: a copied, pickled or saved model (deepcopy,
        # torch.save of the module) comes without its packed copies and packs again at its first call.
        return _dropped, ()


class PackingGroup:
    """The layers one `pack_linear_layers` call swapped in: the first call any of them serves packs all of them
    at once (`pack_layers`, on `threads` threads), so that the packing uses every core instead of one layer
    after another at the pace of the forward pass. `start` begins that packing in a background thread
    instead; the first call then waits for it (`pack`)."""

    __slots__ = ("layers", "threads", "done", "_lock", "_background", "_stop", "__weakref__")

    def __init__(self, layers: list[PackedLinear], threads: int | None) -> None:
        self.layers, self.threads, self.done = layers, threads, False
        self._lock = threading.Lock()
        self._background: threading.Thread | None = None
        self._stop = threading.Event()

    def __reduce__(self):
        # A copied or saved model packs each layer at its own first call (see `PackedWeight.__reduce__`).
        return _dropped, ()

    def _waiting(self) -> list[PackedLinear]:
        return [layer for layer in self.layers if not layer.is_packed()]

    def start(self) -> None:
        """Begin packing the group's layers in a background thread, unless packed or begun already. A process
        that exits before its first call (a command whose every input failed) does not wait for the packing:
        `stop_packing_ahead` stops it at the layer it is on when the interpreter exits."""
        with self._lock:
            if self.done or self._background is not None:
                return
            torch.get_num_threads()  # this thread's intra-op count is set before `pack_layers` changes the default
            layers = self._waiting()
            self._background = threading.Thread(
                target=self._pack_in_background, args=(layers,), name="hvm1-pack-ahead", daemon=True
            )
            _PACKING_AHEAD.add(self)
            self._background.start()

    def _pack_in_background(self, layers: list[PackedLinear]) -> None:
        try:
            pack_layers(layers, self.threads, self._stop)
        except Exception:  # the first call packs what is left, and meets the error itself
            logger.debug("packing ahead stopped by an error; the first call packs the rest", exc_info=True)
        finally:
            _PACKING_AHEAD.discard(self)

    def stop(self) -> None:
        """Stop a background packing at the layer it is on, and wait for it; `pack` packs the rest."""
        self._stop.set()
        background = self._background
        if background is not None:
            background.join()

    def pack(self) -> None:
        """Pack every layer of the group not packed yet from its current parameters (once), after waiting for
        a background packing (`start`) to finish."""
        if self.done:
            return
        with self._lock:
            if self.done:
                return
            if self._background is not None:
                # An error there is not lost: the layers it left are packed here. In a process forked since,
                # the thread is not running (Python marks it stopped), and this packs what it had not.
                self._background.join()
                self._background = None
            pack_layers(self._waiting(), self.threads)
            self.done = True


_PACKING_AHEAD: weakref.WeakSet[PackingGroup] = weakref.WeakSet()  # groups whose background packing runs


def stop_packing_ahead() -> int:
    """Stop every background packing of this process (`PackingGroup.start`) at the layer it is on and wait for
    it; what is left is packed by the first call, if one comes. Run when the interpreter exits, so that an
    exiting process neither waits for a packing it will never use nor tears PyTorch down under it, and before
    the process forks.

    Returns:
        How many packings were running.
    """
    groups = list(_PACKING_AHEAD)
    for group in groups:
        group.stop()
    return len(groups)


atexit.register(stop_packing_ahead)
if hasattr(os, "register_at_fork"):
    # A child forked while other threads run inherits whatever locks they held (a DataLoader's workers are
    # forked right after a command prepares its model); stopped first, the packing holds none, and the first
    # call packs the rest.
    os.register_at_fork(before=stop_packing_ahead)


def can_pack_linear_weights(dtype: torch.dtype) -> bool:
    """Whether this PyTorch build can pack linear weights for CPU inference in `dtype`.

    Args:
        dtype: float32 or bfloat16.

    Returns:
        True where oneDNN is built in and exposes its packed linear product.
    """
    ops = torch.ops.mkldnn
    return (
        dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


def pack_weight(weight: torch.Tensor, dtype: torch.dtype, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """A linear weight (out, in) in oneDNN's packed layout for products in `dtype`: what `PackedLinear`
    multiplies by. The float32 weight is converted to `dtype` on the way (no gradient is recorded).

    Args:
        weight: the (out, in) weight of an `nn.Linear`, on the CPU.
        dtype: float32 or bfloat16 (`can_pack_linear_weights`).
        scratch: a 1-d `dtype` tensor of at least `weight.numel()` elements to convert the weight into, reused
            from one weight to the next (memory touched already, and warm in the cache) instead of a new
            tensor each time; its contents are overwritten and not needed after.

    Returns:
        An opaque oneDNN tensor for `torch.ops.mkldnn._linear_pointwise`.
    """
    with torch.no_grad():
        weight = weight.detach()
        if weight.dtype == dtype:
            converted = weight
        elif scratch is not None and scratch.dtype == dtype and scratch.numel() >= weight.numel():
            converted = scratch[: weight.numel()].view(weight.shape).copy_(weight)
        else:
            converted = weight.to(dtype)
        return torch.ops.mkldnn._reorder_linear_weight(converted, None)


class PackedLinear(nn.Linear):
    """An `nn.Linear` that computes CPU inference in `packed_dtype` through its weight packed in oneDNN's layout.

    It holds the very parameters of the layer it replaces (`state_dict()` unchanged); the packed copy
    (`packed`, a `PackedWeight`) lives beside them and is made at the first call it serves, with those of the
    other layers of its `group` (`pack()` makes it now). It serves only calls whose result it gives exactly as
    the plain layer would in that precision: no gradients, CPU input and weight, and the product's dtype
    (autocast's, else the input's) `packed_dtype`; the bias is added inside the product. It is made again
    when the weight or bias changed since (in place, by `load_state_dict`, or replaced). Anything else
    (training, other devices, another precision) runs the plain `F.linear`.
    """

    def __init__(self, layer: nn.Linear, packed_dtype: torch.dtype) -> None:
        super().__init__(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
        self.weight = layer.weight
        self.bias = layer.bias
        self.train(layer.training)
        self.packed_dtype = packed_dtype
        self.packed: PackedWeight | None = None
        self.group: PackingGroup | None = None

    def serves(self, x: torch.Tensor) -> bool:
        """Whether the packed weight computes this layer's product of `x` here (see the class doc).

        Args:
            x: the layer's input.

        Returns:
            True where the packed weight serves the call.
        """
        if torch.is_grad_enabled() or x.device.type != "cpu" or not x.is_floating_point():
            return False
        if self.weight.device.type != "cpu":
            return False
        compute = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        return compute == self.packed_dtype

    def is_packed(self) -> bool:
        """Whether a packed copy of the current weight and bias exists."""
        return self.packed is not None and _same(self.packed.stamp, _stamp(self))

    def pack(self, scratch: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The packed weight and the bias in `packed_dtype`, made now unless made already from these parameters.

        Args:
            scratch: where to convert the weight on the way (see `pack_weight`).

        Returns:
            The packed weight and the bias (None without one).
        """
        stamp = _stamp(self)
        if self.packed is None or not _same(self.packed.stamp, stamp):
            bias = None if self.bias is None else self.bias.detach().to(self.packed_dtype)
            self.packed = PackedWeight(pack_weight(self.weight, self.packed_dtype, scratch), bias, stamp)
        return self.packed.weight, self.packed.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's product, through the packed weight where it serves the call (`serves`).

        Args:
            x: the input (..., in_features).

        Returns:
            (..., out_features), as `nn.Linear` computes it.
        """
        if not self.serves(x):
            return F.linear(x, self.weight, self.bias)
        if self.group is not None and not self.group.done:
            self.group.pack()
        weight, bias = self.pack()
        return torch.ops.mkldnn._linear_pointwise(x.to(self.packed_dtype), weight, bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, packed_dtype={self.packed_dtype}"

    def unpacked(self) -> nn.Linear:
        """A plain `nn.Linear` holding the same parameters (the packed copy left behind)."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        layer.weight, layer.bias = self.weight, self.bias
        return layer.train(self.training)


def _swap(model: nn.Module, replace) -> nn.Module:
    """`model` with each submodule `replace(module)` gives (not None) put in its place, every parent that held
    it; the returned module is `model` itself unless `model` was replaced."""
    swapped: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) not in swapped:
                new = replace(child)
                if new is None:
                    continue
                swapped[id(child)] = new
            setattr(parent, name, swapped[id(child)])
    return replace(model) or model


PACKING_TIMES = ("first_use", "ahead", "now")


def pack_linear_layers(
    model: nn.Module, dtype: torch.dtype, *, when: str = "first_use", threads: int | None = None
) -> nn.Module:
    """Swap every CPU `nn.Linear` of `model` for a `PackedLinear` computing in `dtype`, sharing its parameters.

    Args:
        model: a model (or a single `nn.Linear`); changed in place.
        dtype: float32 or bfloat16; where this build cannot pack in it (`can_pack_linear_weights`) nothing
            changes.
        when: "first_use": the first inference call any of the layers serves packs them all; "ahead": packing
            begins here in a background thread, and that first call waits for what is left
            (`PackingGroup.start`); "now": packed here (`pack_now`).
        threads: how many layers to pack at once (default: `torch.get_num_threads()`, one per core).

    Returns:
        `model` (a new `PackedLinear` when `model` itself is an `nn.Linear`).

    Raises:
        ValueError: for another `when`.
    """
    if when not in PACKING_TIMES:
        raise ValueError(f"when must be one of {', '.join(PACKING_TIMES)}, got {when!r}")
    if not can_pack_linear_weights(dtype):
        return model

    def replace(module: nn.Module) -> nn.Module | None:
        if isinstance(module, PackedLinear):
            if module.packed_dtype != dtype:
                module.packed_dtype, module.packed = dtype, None
            return None
        if isinstance(module, nn.Linear) and module.weight.device.type == "cpu":
            return PackedLinear(module, dtype)
        return None

    model = _swap(model, replace)
    layers = [m for m in model.modules() if isinstance(m, PackedLinear)]
    group = PackingGroup(layers, threads)
    for layer in layers:
        layer.group = group
    if when == "now":
        group.pack()
    elif when == "ahead":
        group.start()
    return model


def pack_now(model: nn.Module, threads: int | None = None) -> int:
    """Pack the weights of `model`'s `PackedLinear` layers now rather than at their first call (`pack_layers`).

    Args:
        model: a model prepared by `pack_linear_layers`.
        threads: how many layers to pack at once (default: `torch.get_num_threads()`).

    Returns:
        The number of layers packed (those packed already from their current parameters are left alone).
    """
    layers = [m for m in model.modules() if isinstance(m, PackedLinear) and not m.is_packed()]
    pack_layers(layers, threads)
    return len(layers)


def pack_layers(layers: list[PackedLinear], threads: int | None = None, stop: threading.Event | None = None) -> None:
    """Pack `layers` (`PackedLinear.pack`), `threads` of them at once, each by one thread: the cast and the
    reorder of one weight are short, memory-bound steps that two cores split worse than two weights side by
    side (`benchmarks/bench_packing.py` measures both). Each thread converts its weights into one scratch
    tensor of its own, reused from weight to weight, and packs the layers in the order given (the order of
    use, for a model's `modules()`). The threads run PyTorch ops on one intra-op thread each; no other thread's
    count changes (PyTorch's default for new threads is 1 for the instant they take it, then restored).

    Args:
        layers: the layers to pack.
        threads: how many at once (default: `torch.get_num_threads()`, one per core).
        stop: when set, each thread stops after the layer it is on (the rest stays unpacked).
    """
    workers = max(1, min(threads or torch.get_num_threads(), len(layers)))
    if not layers:
        return
    queue: SimpleQueue[PackedLinear] = SimpleQueue()  # each layer taken by one thread, in the order given
    for layer in layers:
        queue.put(layer)
    largest = max(layer.weight.numel() for layer in layers)
    errors: list[BaseException] = []

    def work(ready: threading.Barrier | None) -> None:
        if ready is not None:
            torch.get_num_threads()  # takes the default, 1, for this thread's ops
            ready.wait()
        scratch: torch.Tensor | None = None
        try:
            while not (stop is not None and stop.is_set()):
                try:
                    layer = queue.get_nowait()
                except Empty:
                    return
                if scratch is None and layer.weight.dtype != layer.packed_dtype:
                    scratch = torch.empty(largest, dtype=layer.packed_dtype)
                layer.pack(scratch)
        except BaseException as error:  # noqa: BLE001 - given to the caller's thread below
            errors.append(error)

    if workers == 1:
        work(None)
    else:
        intra_op = torch.get_num_threads()
        ready = threading.Barrier(workers + 1)
        pool = [
            threading.Thread(target=work, args=(ready,), name=f"hvm1-pack-{i}", daemon=True) for i in range(workers)
        ]
        torch.set_num_threads(1)  # the default a new thread takes at its first op
        try:
            for thread in pool:
                thread.start()
            ready.wait()
        finally:
            torch.set_num_threads(intra_op)
        for thread in pool:
            thread.join()
    if errors:
        raise errors[0]


def unpack_linear_layers(model: nn.Module) -> nn.Module:
    """Undo `pack_linear_layers`: every `PackedLinear` back to a plain `nn.Linear` with the same parameters (the
    packed copies are freed). Returns `model` (a new layer when `model` itself is a `PackedLinear`).

    Args:
        model: the model.

    Returns:
        `model`, or a new layer when `model` itself is a `PackedLinear`.
    """
    return _swap(model, lambda module: module.unpacked() if isinstance(module, PackedLinear) else None)


def prepare_for_inference(model: nn.Module, precision: Precision, *, pack: str = "first_use") -> nn.Module:
    """Prepare `model`, in place, for inference at `precision` (see the module doc) and return it.

    For a model that will run only inside `precision.autocast(device)`; its results there are bit for bit
    those of the unprepared model, and its `state_dict()` keeps its keys.

    Args:
        model: a built model (or any module); its linear layers are swapped or cast in place.
        precision: from `hvm1.devices.resolve_precision`.
        pack: when weights are packed, where they are: at the first call ("first_use"), in the background
            from now on ("ahead") or now ("now"); see `pack_linear_layers`.

    Returns:
        `model` (a new module only when `model` itself is an `nn.Linear` that is swapped).
    """
    if precision.is_float32:
        return model
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    on_cpu = all(m.weight.device.type == "cpu" for m in linears)
    if linears and on_cpu and precision.dtype == torch.bfloat16 and can_pack_linear_weights(torch.bfloat16):
        return pack_linear_layers(model, torch.bfloat16, when=pack)
    for module in linears:
        module.to(precision.dtype)
    return model


def precision_for_run(
    name: str | Precision | None,
    device: torch.device | str,
    models: Iterable[torch.nn.Module | None] = (),
    progress: Progress = SILENT,
    calls: int | None = None,
) -> Precision:
    """The precision a command runs its models at: `resolve_precision(name, device)`, said through
    `progress.note`, with each of `models` (None ones skipped) prepared for inference at it
    (`prepare_for_inference`, packing ahead: in the background while the command reads its first input).

    A command that will call its models once leaves them as they are: packing every weight costs more than
    the one call gains from it, and autocast casts the weights in that call instead, to the same results
    (`benchmarks/bench_complete.py --videos 1 --packing ahead,none` measures both).

    Args:
        name: 'auto', 'fp32', 'bf16' or 'fp16' (None: 'auto').
        device: Where the models run.
        models: The models the command runs only for inference at this precision.
        progress: Told the choice and the reason.
        calls: How many inference calls the command will make with each model, where it knows; None: more
            than one, or not known.

    Returns:
        The resolved precision.
    """
    precision = resolve_precision(name, device)
    progress.note(f"precision {precision.describe()} ({precision.reason})")
    if calls is not None and calls <= 1:
        return precision
    for model in models:
        if model is not None:
            prepare_for_inference(model, precision, pack="ahead")
    return precision

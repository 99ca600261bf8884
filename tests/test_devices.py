"""Device choice: 'auto' prefers cuda, then mps, then cpu; a named device is taken as named or refused."""

import os

import pytest
import torch

from hvm1.devices import resolve_device


def _available(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _available(monkeypatch, cuda, mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device(None) == torch.device(expected)


def test_a_named_device_is_kept_even_when_a_faster_one_is_there(monkeypatch):
    _available(monkeypatch, cuda=True, mps=True)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("mps")) == torch.device("mps")


def test_unavailable_devices_are_named(monkeypatch):
    _available(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ValueError, match="'cuda:1' was asked for"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="'mps' was asked for"):
        resolve_device("mps")


# --- precision ---------------------------------------------------------------------------------------------

from hvm1 import devices  # noqa: E402
from hvm1.devices import cpu_bf16_units, fast_bf16, resolve_precision  # noqa: E402


def fake_cpu(monkeypatch, amx: bool, avx512_bf16: bool) -> None:
    """Make PyTorch's CPU feature query answer as a CPU with (or without) the bf16 units would."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)


@pytest.mark.parametrize("amx, avx512_bf16", [(True, True), (False, True), (True, False)])
def test_auto_is_bf16_on_a_cpu_with_bf16_units(monkeypatch, amx, avx512_bf16):
    fake_cpu(monkeypatch, amx, avx512_bf16)
    chosen = resolve_precision("auto", "cpu")
    assert (chosen.name, chosen.dtype) == ("bf16", torch.bfloat16)
    assert "bf16 matrix units" in chosen.reason and ("amx" in chosen.reason) == amx


def test_auto_is_fp32_on_a_cpu_without_them(monkeypatch):
    fake_cpu(monkeypatch, False, False)
    chosen = resolve_precision(None, "cpu")
    assert (chosen.name, chosen.dtype, chosen.is_float32) == ("fp32", torch.float32, True)
    assert "no bf16 matrix units" in chosen.reason
    asked = resolve_precision("bf16", "cpu")  # asked for: taken, with the warning in its reason
    assert asked.dtype == torch.bfloat16 and "much slower" in asked.reason


def cpuinfo(path, flags: str):
    """A /proc/cpuinfo of two cores with these `flags`."""
    core = "processor\t: {}\nvendor_id\t: GenuineIntel\nflags\t\t: {}\nbugs\t\t: spectre_v1\n\n"
    path.write_text(core.format(0, flags) + core.format(1, flags))
    return path


def test_cpuinfo_flags_answer_when_torch_cannot(monkeypatch, tmp_path):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.setattr(devices, "CPUINFO", cpuinfo(tmp_path / "amx", "fpu avx2 fma amx_bf16 amx_tile"))
    assert cpu_bf16_units() == ["amx_bf16"] and fast_bf16("cpu")[0]
    monkeypatch.setattr(devices, "CPUINFO", cpuinfo(tmp_path / "avx512", "fpu avx2 fma avx512f"))
    assert cpu_bf16_units() == [] and resolve_precision("auto", "cpu").name == "fp32"
    monkeypatch.setattr(devices, "CPUINFO", tmp_path / "missing")  # not Linux
    assert cpu_bf16_units() == []


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_follows_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    chosen = resolve_precision("auto", torch.device("cuda", 0))
    assert chosen.name == expected and "Fake GPU" in chosen.reason


def test_mps_and_unknown_names():
    assert resolve_precision("auto", "mps").name == "fp32"
    assert resolve_precision("fp16", "cpu").dtype == torch.float16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'half'"):
        resolve_precision("half", "cpu")


def test_fp32_autocast_changes_nothing_and_bf16_computes_in_bf16():
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)
    plain = layer(x)
    with resolve_precision("fp32", "cpu").autocast("cpu"):
        same = layer(x)
    with resolve_precision("bf16", "cpu").autocast("cpu"):
        low = layer(x)
    assert torch.equal(plain, same) and same.dtype == torch.float32
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), plain, atol=0.05)


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "cast"])
def test_prepare_for_inference_gives_autocast_results_exactly(reference, monkeypatch, packing):
    import hvm1
    from hvm1 import inference
    from reference_data import reference_heads

    if packing and not inference.can_pack_linear_weights(torch.bfloat16):
        pytest.skip("this torch build has no oneDNN")
    if not packing:  # a build without oneDNN: the weights are cast instead
        monkeypatch.setattr(inference, "can_pack_linear_weights", lambda dtype: False)
    vit = hvm1.load_model(reference / "vit_checkpoint.pth", **reference_heads(reference))
    video = torch.randn(2, 3, vit.config.num_frames, vit.config.img_size, vit.config.img_size)
    bf16 = resolve_precision("bf16", "cpu")
    with torch.inference_mode(), bf16.autocast("cpu"):
        expected = vit(video)
        inference.prepare_for_inference(vit, bf16)
        prepared = vit(video)
    packed = [m for m in vit.modules() if isinstance(m, inference.PackedLinear)]
    linear_dtype = torch.float32 if packing else torch.bfloat16
    assert vit.head.weight.dtype == linear_dtype and vit.blocks[0].attn.q.weight.dtype == linear_dtype
    assert len(packed) == (sum(isinstance(m, torch.nn.Linear) for m in vit.modules()) if packing else 0)
    assert vit.blocks[0].norm1.weight.dtype == torch.float32
    assert vit.cls_token.dtype == torch.float32 and vit.patch_embed.proj.weight.dtype == torch.float32
    assert torch.equal(prepared, expected)
    assert inference.prepare_for_inference(vit, resolve_precision("fp32", "cpu")) is vit


FREED_BLOCKS_CHILD = """
import resource, sys
import torch
from hvm1 import devices
kept = sys.argv[1] == "keep" and devices.keep_freed_memory()
size = 42 << 20  # a ViT-H MLP activation at 2048 tokens
for _ in range(16):  # the heap reaches its high-water mark (glibc takes a few rounds)
    torch.empty(size, dtype=torch.uint8).fill_(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    torch.empty(size, dtype=torch.uint8).fill_(1)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_reuses_large_blocks():
    """Eight 42 MB blocks, each freed before the next: with `keep_freed_memory` they reuse one block's pages;
    without it each is fresh from the kernel (10,752 page faults of 4 KB). Each side in a fresh process: a
    test process's heap, fragmented by the tests before, and its mallopt settings would be shared with them."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "0"}  # 4 KB pages on both sides: one fault per page
    faults = {}
    for mode in ("keep", "default"):
        done = subprocess.run(
            [sys.executable, "-c", FREED_BLOCKS_CHILD, mode], capture_output=True, text=True, env=env, check=True
        )
        kept, count = done.stdout.split()
        assert kept == str(mode == "keep")
        faults[mode] = int(count)
    block = (42 << 20) // 4096
    assert faults["default"] > 8 * block * 0.9, faults  # fresh pages every time
    assert faults["keep"] < block, faults  # the pages of one block at most

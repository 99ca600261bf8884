"""The one atomic writer: complete or untouched, and the permissions a plain write gives."""

from __future__ import annotations

import os
import stat

import pytest

import hvm1
from hvm1.files import write_atomically
from reference_data import reference_dir, reference_heads


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _plain_write_mode(tmp_path) -> int:
    plain = tmp_path / "plain"
    with open(plain, "wb") as handle:
        handle.write(b"x")
    return _mode(plain)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_a_new_file_gets_the_mode_of_a_plain_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        written = write_atomically(tmp_path / "sub" / "file.bin", lambda handle: handle.write(b"data"))
        expected = _plain_write_mode(tmp_path)
    finally:
        os.umask(old)
    assert written.read_bytes() == b"data"
    assert _mode(written) == expected == 0o666 & ~umask
    assert not list((tmp_path / "sub").glob(".*.tmp"))


def test_an_existing_file_keeps_its_mode_and_a_failed_write_leaves_it_untouched(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    write_atomically(path, lambda handle: handle.write(b"new"))
    assert path.read_bytes() == b"new" and _mode(path) == 0o640

    def fails(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fails)
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]


def test_convert_and_training_checkpoints_are_readable_by_others_under_umask_022(tmp_path):
    tiny = reference_dir("tiny")
    old = os.umask(0o022)
    try:
        model = hvm1.load_model(tiny / "vit_checkpoint.pth", **reference_heads(tiny))
        converted = hvm1.save_safetensors(model, tmp_path / "vit.safetensors")
        from hvm1.train.checkpointing import save_checkpoint

        checkpoint = save_checkpoint(tmp_path / "checkpoint-last.pth", {"model": model.state_dict()})
    finally:
        os.umask(old)
    assert _mode(converted) == _mode(checkpoint) == 0o644

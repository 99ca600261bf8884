"""Embedding files: .npz and .parquet round trips, token-shaped rows, atomic writes, foreign files."""

from __future__ import annotations

import numpy as np
import pytest

from hvm1.eval import Embeddings, load_embeddings, save_embeddings


def tokens_rows(rows: int = 3, clips: int = 2, tokens: int = 5, width: int = 4) -> Embeddings:
    generator = np.random.default_rng(0)
    clip_embeddings = generator.standard_normal((rows, clips, tokens, width)).astype(np.float32)
    return Embeddings(
        paths=[f"videos/{index}.mp4" for index in range(rows)],
        labels=np.array([1, -1, 0]),
        clip_times=generator.uniform(0, 10, (rows, clips, 2)),
        embeddings=clip_embeddings.mean(axis=1),
        clip_embeddings=clip_embeddings,
        classes=None,
        settings={"pool": "tokens", "mean": [0.45, 0.45, 0.45]},
    )


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_round_trip(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    rows = tokens_rows()
    path = save_embeddings(rows, tmp_path / f"rows{suffix}")
    back = load_embeddings(path)
    assert back.paths == rows.paths and back.settings == rows.settings and back.classes is None
    np.testing.assert_array_equal(back.labels, rows.labels)
    np.testing.assert_array_equal(back.clip_times, rows.clip_times)
    np.testing.assert_array_equal(back.embeddings, rows.embeddings)
    np.testing.assert_array_equal(back.clip_embeddings, rows.clip_embeddings)
    assert back.embeddings.flags.writeable
    assert [file.name for file in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_concatenate_refuses_other_settings():
    rows = tokens_rows()
    other = Embeddings(**{**vars(rows), "settings": {"pool": "cls"}})
    assert len(Embeddings.concatenate([rows, rows.select([2, 0])])) == 5
    with pytest.raises(ValueError, match="pool='tokens' vs 'cls'"):
        Embeddings.concatenate([rows, other])


def test_foreign_and_missing_files(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an embedding file"):
        load_embeddings(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        load_embeddings(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"\.npz or \.parquet"):
        save_embeddings(tokens_rows(), tmp_path / "rows.csv")

"""Embedding files: one row per video in `.npz` or `.parquet`, written atomically, read back as `Embeddings`.

`.npz` arrays: `embeddings` (videos, ...) float32 (float16 for `--pool tokens`: memory-mappable with
`load_embeddings(mmap=True)`), `paths`, `labels` (-1 where none), `clip_times`
(videos, clips, 2: the first and last frame time of each clip, in seconds), `clip_embeddings` (videos, clips,
...) when kept, `classes` when the videos came from class folders, and `settings` (JSON: how the embeddings
were made). `.parquet` (pyarrow): one row per video with columns `path`, `label`, `clip_times`, `embedding`
(and `clip_embeddings`), fixed-size lists nested as deep as the arrays; classes and settings in the schema
metadata under `hvm1`.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hvm1.files import write_atomically

PathLike = str | os.PathLike
EMBEDDING_SUFFIXES = (".npz", ".parquet")


@dataclass
class Embeddings:
    """Embeddings of videos, one row each, as `hvm1 embed` writes them.

    `embeddings` is (videos, width) for cls/mean pooling, float32, or (videos, 1 + L, width) for tokens,
    float16 as `hvm1 embed` writes them;
    `labels` (videos,) int64, -1 where none; `clip_times` (videos, clips, 2) float64; `clip_embeddings`
    (videos, clips, ...) or None; `classes` the class names labels index, or None; `settings` how they
    were made (model, pooling, clips, preprocessing).
    """

    paths: list[str]
    labels: np.ndarray
    clip_times: np.ndarray
    embeddings: np.ndarray
    clip_embeddings: np.ndarray | None = None
    classes: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def select(self, rows: Sequence[int] | np.ndarray) -> Embeddings:
        """The given rows, in the given order.

        Args:
            rows: row indices.

        Returns:
            The embeddings of those rows.
        """
        rows = np.asarray(rows, dtype=np.int64)
        return Embeddings(
            paths=[self.paths[row] for row in rows],
            labels=self.labels[rows],
            clip_times=self.clip_times[rows],
            embeddings=self.embeddings[rows],
            clip_embeddings=None if self.clip_embeddings is None else self.clip_embeddings[rows],
            classes=self.classes,
            settings=self.settings,
        )

    @staticmethod
    def concatenate(parts: Sequence[Embeddings]) -> Embeddings:
        """The rows of `parts` one after another (their settings and classes must agree)."""
        if not parts:
            raise ValueError("no embeddings to concatenate")
        first = parts[0]
        for part in parts[1:]:
            check_compatible(first.settings, part.settings, "the parts to join")
        kept = first.clip_embeddings is not None
        return Embeddings(
            paths=[path for part in parts for path in part.paths],
            labels=np.concatenate([part.labels for part in parts]),
            clip_times=np.concatenate([part.clip_times for part in parts]),
            embeddings=np.concatenate([part.embeddings for part in parts]),
            clip_embeddings=np.concatenate([part.clip_embeddings for part in parts]) if kept else None,
            classes=first.classes,
            settings=first.settings,
        )


def check_compatible(stored: dict[str, Any], wanted: dict[str, Any], where: str) -> None:
    """Raise ValueError naming every setting in which `stored` and `wanted` differ."""
    keys = sorted(stored.keys() | wanted.keys())
    differ = [f"{key}={stored.get(key)!r} vs {wanted.get(key)!r}" for key in keys if stored.get(key) != wanted.get(key)]
    if differ:
        raise ValueError(f"{where} were made with other settings ({'; '.join(differ)}); use a new output file")


def check_suffix(path: PathLike) -> Path:
    """`path` as a Path, or ValueError when its extension is neither `.npz` nor `.parquet`."""
    path = Path(path)
    if path.suffix not in EMBEDDING_SUFFIXES:
        raise ValueError(f"{path}: the embedding file must end in .npz or .parquet, not {path.suffix or 'nothing'!r}")
    return path


def save_embeddings(embeddings: Embeddings, path: PathLike) -> Path:
    """Write embeddings to a file atomically: the file is complete or untouched, whatever interrupts the write.

    Args:
        embeddings: what to write.
        path: the file, `.npz` or `.parquet` by its extension (Parquet needs `hvm1[parquet]`).

    Returns:
        The path written."""
    path = check_suffix(path)
    if path.suffix == ".npz":
        return write_atomically(path, lambda handle: np.savez(handle, **_npz_arrays(embeddings)))
    pa, pq = require_pyarrow()
    table = _arrow_table(embeddings, pa)
    return write_atomically(path, lambda handle: pq.write_table(table, handle))


def load_embeddings(path: PathLike, mmap: bool = False) -> Embeddings:
    """Read a file `save_embeddings` (or `hvm1 embed`) wrote.

    Args:
        path: an `.npz` or `.parquet` embedding file.
        mmap: memory-map the `embeddings` of an `.npz` read-only instead of reading them (pages load as rows
            are touched), for token sets larger than memory.

    Returns:
        The `Embeddings`: rows, paths, labels, clip times, classes and the settings they were made with.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not an embedding file (named in the message)."""
    path = check_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such embedding file")
    try:
        return _load_npz(path, mmap) if path.suffix == ".npz" else _load_parquet(path)
    except Exception as error:  # a damaged file makes numpy, zipfile or pyarrow raise almost anything
        raise ValueError(
            f"{path} is not an embedding file written by hvm1 embed, or is damaged ({type(error).__name__}: {error})"
        ) from error


def _npz_arrays(embeddings: Embeddings) -> dict[str, Any]:
    arrays = {
        "embeddings": _stored_floats(embeddings.embeddings),
        "paths": np.array(embeddings.paths, dtype=np.str_),
        "labels": embeddings.labels.astype(np.int64, copy=False),
        "clip_times": embeddings.clip_times.astype(np.float64, copy=False),
        "settings": np.array(json.dumps(embeddings.settings)),
    }
    if embeddings.clip_embeddings is not None:
        arrays["clip_embeddings"] = _stored_floats(embeddings.clip_embeddings)
    if embeddings.classes is not None:
        arrays["classes"] = np.array(embeddings.classes, dtype=np.str_)
    return arrays


def _stored_floats(array: np.ndarray) -> np.ndarray:
    """float16 (token embeddings) stays float16; everything else is stored as float32."""
    return array if array.dtype == np.float16 else array.astype(np.float32, copy=False)


def _mapped_member(path: Path, name: str) -> np.ndarray | None:
    """The array `name` of an uncompressed `.npz` as a read-only memory map (None when it is compressed)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)  # the member's local header: its name and extra field lengths at bytes 26-29
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
        offset = handle.tell()
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="F" if fortran_order else "C")


def _load_npz(path: Path, mmap: bool = False) -> Embeddings:
    mapped = _mapped_member(path, "embeddings") if mmap else None
    with np.load(path, allow_pickle=False) as data:
        paths = data["paths"].tolist()
        return Embeddings(
            paths=paths,
            labels=data["labels"],
            clip_times=data["clip_times"],
            embeddings=data["embeddings"] if mapped is None else mapped,
            clip_embeddings=data["clip_embeddings"] if "clip_embeddings" in data else None,
            classes=data["classes"].tolist() if "classes" in data else None,
            settings=json.loads(data["settings"].item()) if "settings" in data else {},
        )


def require_pyarrow():
    """The `pyarrow` and `pyarrow.parquet` modules, or ImportError saying how to install them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "writing or reading .parquet embeddings needs pyarrow: pip install 'hvm1[parquet]' (or use .npz)"
        ) from None
    return pa, pq


def _to_arrow(array: np.ndarray, pa):
    """(rows, *shape) -> fixed-size lists nested len(shape) deep, one per row."""
    nested = pa.array(np.ascontiguousarray(array).reshape(-1))
    for size in reversed(array.shape[1:]):
        nested = pa.FixedSizeListArray.from_arrays(nested, size)
    return nested


def _from_arrow(column, rows: int) -> np.ndarray:
    values, shape = column.combine_chunks(), []
    while hasattr(values.type, "list_size"):
        shape.append(values.type.list_size)
        values = values.flatten()
    return np.array(values.to_numpy(zero_copy_only=False)).reshape(rows, *shape)  # a writable copy


def _arrow_table(embeddings: Embeddings, pa):
    columns = {
        "path": pa.array(embeddings.paths, pa.string()),
        "label": pa.array(embeddings.labels.astype(np.int64, copy=False)),
        "clip_times": _to_arrow(embeddings.clip_times.astype(np.float64, copy=False), pa),
        "embedding": _to_arrow(embeddings.embeddings.astype(np.float32, copy=False), pa),
    }
    if embeddings.clip_embeddings is not None:
        columns["clip_embeddings"] = _to_arrow(embeddings.clip_embeddings.astype(np.float32, copy=False), pa)
    metadata = {"hvm1": json.dumps({"settings": embeddings.settings, "classes": embeddings.classes})}
    return pa.table(columns, metadata=metadata)


def _load_parquet(path: Path) -> Embeddings:
    _, pq = require_pyarrow()
    table = pq.read_table(path)
    rows = table.num_rows
    extra = json.loads((table.schema.metadata or {}).get(b"hvm1", b"{}"))
    return Embeddings(
        paths=table.column("path").to_pylist(),
        labels=np.array(table.column("label").to_numpy(), dtype=np.int64),
        clip_times=_from_arrow(table.column("clip_times"), rows),
        embeddings=_from_arrow(table.column("embedding"), rows).astype(np.float32, copy=False),
        clip_embeddings=(
            _from_arrow(table.column("clip_embeddings"), rows).astype(np.float32, copy=False)
            if "clip_embeddings" in table.column_names
            else None
        ),
        classes=extra.get("classes"),
        settings=extra.get("settings", {}),
    )

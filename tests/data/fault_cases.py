"""Damaged copies of the real videos, made deterministically, and the child process that reads them.

A case is (file name, kind of damage, seed); `damage` turns the original bytes into the damaged ones,
the same bytes for the same case on every machine. Run as a script, this module is the child of the
fault test: it reads one case per line of stdin (JSON), writes the damaged copy to a scratch folder, reads
it (a clip with `read_clip` from a video, `read_image` from a .jpg), and answers one JSON line on stdout:
"decoded" with the shape read, "VideoError" with the message, or "other" with the exception type and message.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

KINDS = ("bitflip", "truncate", "zero", "header_noise", "shuffle", "duplicate")
# What every case asks for: a small clip, so that the test spends its time in the damaged parts of the
# decoder rather than in converting pixels.
NUM_FRAMES = 8
SAMPLING_RATE = 4
SHORT_SIDE = 32
STARTS = ("center", "random", 0.0, (1, 3), 2.5)


def cases(names: list[str], per_kind: int) -> list[tuple[str, str, int]]:
    """Every (name, kind, seed): `per_kind` seeds of each kind of damage for each video."""
    return [(name, kind, seed) for name in names for kind in KINDS for seed in range(per_kind)]


def damage(data: bytes, kind: str, seed: int) -> bytes:
    """A damaged copy of `data`, decided by `kind` and `seed` alone (Python's `random.Random(seed)`)."""
    rng = random.Random(f"{kind}-{seed}")
    out = bytearray(data)
    size = len(out)
    if kind == "bitflip":  # scattered single-bit errors, from a handful to a few hundred
        for _ in range(rng.choice([1, 4, 16, 64, 256])):
            position = rng.randrange(size)
            out[position] ^= 1 << rng.randrange(8)
    elif kind == "truncate":  # cut anywhere, from inside the header to just before the end
        out = out[: rng.choice([rng.randrange(64, 4096), rng.randrange(size)])]
    elif kind == "zero":  # a zeroed range, small to large
        length = min(size, rng.choice([16, 512, 8192, 65536, 262144]))
        start = rng.randrange(size - length + 1)
        out[start : start + length] = bytes(length)
    elif kind == "header_noise":  # random bytes over part of the first 4 KB (container and stream headers)
        start = rng.randrange(0, 4096)
        length = rng.randrange(1, 4096 - start + 1)
        out[start : start + length] = rng.randbytes(length)
    elif kind == "shuffle":  # equal chunks of the file in a shuffled order (the first one kept, or not)
        chunk = rng.choice([4096, 32768, 131072])
        pieces = [out[offset : offset + chunk] for offset in range(0, size, chunk)]
        keep_first = rng.random() < 0.5
        rest = pieces[1:] if keep_first else pieces
        rng.shuffle(rest)
        out = bytearray().join(([pieces[0]] if keep_first else []) + rest)
    elif kind == "duplicate":  # a chunk copied in again somewhere else (a repeated write)
        length = min(size, rng.choice([1024, 16384, 131072]))
        source = rng.randrange(size - length + 1)
        target = rng.randrange(size)
        out[target:target] = out[source : source + length]
    else:
        raise ValueError(f"unknown kind of damage {kind!r}")
    return bytes(out)


def start_for(kind: str, seed: int):
    """Where the case's clip starts (one of STARTS, cycling with the seed and kind)."""
    start = STARTS[(seed + KINDS.index(kind)) % len(STARTS)]
    return tuple(start) if isinstance(start, list) else start


def _read_case(fixtures: Path, scratch: Path, name: str, kind: str, seed: int) -> dict:
    import torch

    from hvm1.data import VideoError, read_clip, read_image

    image = name.endswith(".jpg")
    path = scratch / f"{kind}-{seed}-{name}"
    path.write_bytes(damage((fixtures / ("images" if image else "videos") / name).read_bytes(), kind, seed))
    try:
        if image:
            frames = read_image(path)
        else:
            frames = read_clip(
                path,
                NUM_FRAMES,
                SAMPLING_RATE,
                30.0,
                start=start_for(kind, seed),
                short_side=SHORT_SIDE,
                generator=torch.Generator().manual_seed(seed),
            ).frames
    except VideoError as error:
        return {"outcome": "VideoError", "message": str(error), "names_file": str(path) in str(error)}
    except Exception as error:  # what the test exists to find
        return {"outcome": "other", "message": f"{type(error).__name__}: {error}"}
    finally:
        path.unlink()
    return {"outcome": "decoded", "shape": list(frames.shape), "dtype": str(frames.dtype)}


def main() -> None:
    import torch

    import hvm1.data  # noqa: F401  (imported before the first case, so no case's time limit pays for it)

    torch.set_num_threads(1)
    fixtures, scratch = Path(sys.argv[1]), Path(sys.argv[2])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        name, kind, seed = json.loads(line)
        print(json.dumps(_read_case(fixtures, scratch, name, kind, seed)), flush=True)


if __name__ == "__main__":
    main()

"""Make docs/propagation_overlay.png: `hvm1.segment.propagate` on frames of the test video box.mp4 with a
textured disk (cut from cup.mp4) pasted in and moving, so its first-frame mask is exact.

The model is the tiny reference ViT of tests/fixtures/reference/tiny (2 blocks, width 64, perturbed random
weights): the picture shows what the command writes, not how well a trained ViT-H/14 tracks.
Usage: python examples/propagation_overlay.py [OUT.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hvm1
from hvm1.data import read_clip
from hvm1.segment import propagate
from hvm1.viz.segmentation import overlay_strip

# The repository's test data (tests/reference_data.py says where it lives).
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    out = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[1] / "docs" / "propagation_overlay.png"
    )
    backgrounds = read_clip(FIXTURES / "videos" / "box.mp4", num_frames=10, sampling_rate=3, start=0.0).frames.numpy()
    texture = read_clip(FIXTURES / "videos" / "cup.mp4", num_frames=1, start=0.0).frames.numpy()[0][180:300, 240:360]
    yy, xx = np.mgrid[:120, :120]
    disk = (yy - 59.5) ** 2 + (xx - 59.5) ** 2 <= 60**2
    frames, first = [], None
    for index, background in enumerate(backgrounds):
        frame = background.copy()
        top, left = 150 + 6 * index, 120 + 14 * index
        frame[top : top + 120, left : left + 120][disk] = texture[disk]
        if first is None:
            first = np.zeros(frame.shape[:2], dtype=np.uint8)
            first[top : top + 120, left : left + 120][disk] = 1
        frames.append(torch.from_numpy(frame).permute(2, 0, 1).contiguous())
    folder = FIXTURES / "reference" / "tiny"
    heads = json.loads((folder / "config.json").read_text())["num_heads"]
    model = hvm1.load_model(folder / "mae_checkpoint.pth", model_type="vit", num_heads=heads)
    masks = propagate(model, frames, first)
    strip = overlay_strip(frames, masks, count=4)
    image = Image.fromarray(strip)
    image = image.resize((image.width // 2, image.height // 2), Image.BILINEAR)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)  # ~100 kB
    print(out)


if __name__ == "__main__":
    main()

"""Commands taking --checkpoint use the preprocessing a converted file records, at the model's built size."""

from __future__ import annotations

import argparse
import json

import hvm1
from hvm1.cli import eval as cli_eval
from hvm1.cli import viz as cli_viz
from hvm1.zoo import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSING_METADATA_KEY
from reference_data import reference_dir, reference_heads


def test_recorded_preprocessing_reaches_viz_and_eval_commands(tmp_path):
    tiny = reference_dir("tiny")
    model = hvm1.load_model(tiny / "vit_checkpoint.pth", **reference_heads(tiny))
    recorded = {"img_size": 56, "num_frames": 8, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                "single_image": True}
    path = hvm1.save_safetensors(model, tmp_path / "imagenet_like.safetensors",
                                 metadata={PREPROCESSING_METADATA_KEY: json.dumps(recorded)})
    args = argparse.Namespace(model=None, checkpoint=path, set=[], device="cpu", img_size=None, dtype=None)
    for loaded, _, pre in (cli_viz._load_viz_model(args, "vit"), cli_eval._load_eval_model(args)):
        assert isinstance(loaded, hvm1.VideoViT)
        assert (pre.mean, pre.std, pre.single_image) == (IMAGENET_MEAN, IMAGENET_STD, True)
        assert (pre.img_size, pre.num_frames) == (56, 8)

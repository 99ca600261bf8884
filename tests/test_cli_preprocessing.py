"""Commands taking --checkpoint use the preprocessing a converted file records, at the model's built size."""

from __future__ import annotations

import json

import hvm1
from hvm1.zoo import IMAGENET_MEAN, IMAGENET_STD, PREPROCESSING_METADATA_KEY, load_for_inputs
from reference_data import reference_dir, reference_heads


def test_recorded_preprocessing_reaches_viz_and_eval_commands(tmp_path):
    tiny = reference_dir("tiny")
    model = hvm1.load_model(tiny / "vit_checkpoint.pth", **reference_heads(tiny))
    recorded = {
        "img_size": 56,
        "num_frames": 8,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "single_image": True,
    }
    path = hvm1.save_safetensors(
        model, tmp_path / "imagenet_like.safetensors", metadata={PREPROCESSING_METADATA_KEY: json.dumps(recorded)}
    )
    for model_type in ("vit", None):
        loaded = load_for_inputs(path, model_type=model_type, device="cpu")
        pre = loaded.preprocessing
        assert isinstance(loaded.model, hvm1.VideoViT) and loaded.stem == "imagenet_like"
        assert (pre.mean, pre.std, pre.single_image) == (IMAGENET_MEAN, IMAGENET_STD, True)
        assert (pre.img_size, pre.num_frames) == (56, 8)

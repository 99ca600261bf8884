"""`--no-autorotate`: every command that reads videos turns them upright by default (as players show them) and
reads them as stored with the flag; the setting reaches every preset the commands read with."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hvm1.cli import build_parser
from hvm1.cli.command import config_from_args
from hvm1.models import VideoViT
from hvm1.models.configs import ViTConfig
from hvm1.viz.runs import CompleteConfig
from hvm1.zoo import Preprocessing, preprocessing_from_json, preprocessing_to_json, sized_preprocessing

# Each command that reads videos or images, with the arguments it needs to parse.
COMMANDS = {
    "complete": ["a.mp4", "--model", "mae_hvm1_none"],
    "attention": ["a.mp4", "--model", "vit_hvm1"],
    "pca": ["a.mp4", "--model", "vit_hvm1"],
    "embed": ["a.mp4", "--model", "vit_hvm1", "-o", "e.parquet"],
    "evaluate": ["data", "--model", "vit_hvm1"],
    "classify": ["a.mp4", "--model", "vit_hvm1"],
    "score": ["a.mp4", "--model", "mae_hvm1_none"],
    "propagate": ["a.mp4", "--mask", "m.png", "--model", "vit_hvm1", "--out-dir", "out"],
    "pretrain": ["data", "--out-dir", "run"],
    "finetune": ["data", "--val", "val", "--model", "vit_hvm1", "--out-dir", "run"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_reading_command_has_the_flag(command):
    parser = build_parser(command)
    try:
        default = parser.parse_args([command, *COMMANDS[command]])
        stored = parser.parse_args([command, *COMMANDS[command], "--no-autorotate"])
    except SystemExit as error:  # a required argument this table lacks: say which command
        raise AssertionError(f"{command} {' '.join(COMMANDS[command])} does not parse") from error
    # Training flags left out keep the library default (TrainConfig.autorotate, True): argparse stores none.
    assert getattr(default, "autorotate", True) is True and stored.autorotate is False


def test_the_flag_reaches_every_preset():
    model = VideoViT(
        ViTConfig(
            img_size=32, patch_size=16, num_frames=4, t_patch_size=2, embed_dim=32, depth=1, num_heads=2, num_classes=0
        )
    )
    args = build_parser("complete").parse_args(["complete", "a.mp4", "--model", "x", "--no-autorotate"])
    pre = sized_preprocessing(config_from_args(CompleteConfig, args), Preprocessing(img_size=32, num_frames=4), model)
    presets = [
        pre.visualisation(),
        pre.evaluation(),
        pre.evaluation("uniform"),
        pre.image_evaluation(),
        pre.training((0.5, 1.0)),
        pre.image_training((0.5, 1.0)),
        pre.at_size(64, 8).for_images().evaluation(),
    ]
    assert [preset.autorotate for preset in presets] == [False] * len(presets)
    default = build_parser("complete").parse_args(["complete", "a.mp4", "--model", "x"])
    assert (
        sized_preprocessing(config_from_args(CompleteConfig, default), Preprocessing(img_size=32, num_frames=4), model)
        .visualisation()
        .autorotate
    )


def test_training_configs_take_the_flag():
    from hvm1.train import PretrainConfig
    from hvm1.train.commands import PretrainCommand

    args = build_parser("pretrain").parse_args(["pretrain", "data", "--out-dir", "run", "--no-autorotate"])
    assert config_from_args(PretrainCommand, args).autorotate is False
    assert PretrainConfig(out_dir="run").autorotate is True


def test_a_model_file_does_not_record_how_files_were_read():
    pre = Preprocessing(img_size=32, num_frames=4, autorotate=False)
    assert "autorotate" not in json.loads(preprocessing_to_json(pre))
    assert preprocessing_from_json(preprocessing_to_json(pre)) == dataclasses.replace(pre, autorotate=True)

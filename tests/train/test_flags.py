"""The training flags are generated from the config dataclasses: every field a flag, parsed into its type."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from hvm1.cli import build_parser
from hvm1.cli.command import config_from_args
from hvm1.settings import setting_info
from hvm1.train import FinetuneConfig, PretrainConfig
from hvm1.train.commands import FinetuneCommand, PretrainCommand

# Each command's config, the job config it extends, and the arguments it needs besides.
COMMANDS = {
    "pretrain": (PretrainCommand, PretrainConfig, ["clip.mp4"]),
    "finetune": (FinetuneCommand, FinetuneConfig, ["train", "--val", "val"]),
}


def _command(name: str):
    return build_parser()._subparsers._group_actions[0].choices[name]


def _other_value(cls, field: dataclasses.Field):
    """A value unlike the field's default, and how it is spelled on the command line."""
    info, kind = setting_info(cls, field.name), typing.get_type_hints(cls)[field.name]
    default = field.default
    if kind is bool:
        return not default, []
    if info["choices"]:
        choice = next(c for c in info["choices"] if c != default)
        return choice, [choice]
    if isinstance(default, tuple):
        return (0.25, 0.75), ["0.25", "0.75"]
    if "tuple[int, int]" in str(kind):
        return (200, 300), ["200,300"]
    if kind is str or str in typing.get_args(kind):
        return "elsewhere", ["elsewhere"]
    if kind is float or float in typing.get_args(kind):
        return 0.375, ["0.375"]
    return 3, ["3"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_has_a_flag_that_sets_it(command):
    cls, job, positional = COMMANDS[command]
    argv, expected = [command, *positional, "--checkpoint", "model.pth"], {}
    for field in dataclasses.fields(job):
        if not setting_info(cls, field.name)["flag"] or field.name in ("model", "overrides"):
            continue
        value, spelled = _other_value(cls, field)
        flag = f"--{'no-' if field.default is True else ''}{field.name.replace('_', '-')}"
        argv += [flag, *spelled]
        expected[field.name] = value
    args = build_parser().parse_args(argv)
    config = config_from_args(cls, args)
    assert {name: getattr(config, name) for name in expected} == expected
    library_only = {f.name for f in dataclasses.fields(cls) if not setting_info(cls, f.name)["flag"]}
    assert library_only == (set() if command == "pretrain" else {"arch"})


def test_unset_flags_keep_the_library_defaults_and_published_spellings_work():
    args = build_parser().parse_args(
        [
            "finetune",
            "train",
            "--val",
            "val",
            "--model",
            "m",
            "--output_dir",
            "run",
            "--batch_size",
            "3",
            "--nb_classes",
            "5",
            "--reprob",
            "0.25",
        ]
    )
    config = config_from_args(FinetuneCommand, args)
    assert (config.out_dir, config.batch_size, config.num_classes, config.random_erasing) == ("run", 3, 5, 0.25)
    assert config == FinetuneCommand(
        train="train", val="val", out_dir="run", model="m", batch_size=3, num_classes=5, random_erasing=0.25
    )


def test_help_shows_each_commands_own_defaults_and_words():
    pre, fine = (" ".join(_command(name).format_help().split()) for name in ("pretrain", "finetune"))
    assert "AdamW betas (default 0.9 0.95)" in pre and "AdamW betas (default 0.9 0.999)" in fine
    assert "position embeddings and tokens are decayed" in pre and "decayed" not in fine
    assert "the CLS token and the position embeddings" in fine
    assert "--blr" in fine and "--blr" not in pre and "(default: --blr x total batch / 256)" in fine
    assert "files per micro-batch per process (default 4)" in pre and "(default 16)" in fine

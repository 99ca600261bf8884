"""The command line as a user first meets it: `-h` and `--version`, Ctrl-C, and a model that cannot be fetched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hvm1.cli import COMMAND_GROUPS, INTERRUPTED, build_parser, console, main
from hvm1.cli.command import Command
from reference_data import MAE_CHECKPOINT, TINY_SET, VIDEOS, fixture

SRC = Path(__file__).resolve().parents[1] / "src"


def run_hvm1(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "hvm1.cli", *args], env=environment, capture_output=True, text=True, timeout=timeout
    )


def test_top_level_help_imports_no_torch():
    code = (
        "import sys\nfrom hvm1.cli import main\ntry:\n    main(['-h'])\nexcept SystemExit as stop:\n"
        "    assert stop.code == 0\nprint('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout and "pretrain" in result.stdout, result.stdout
    assert result.stdout.strip().endswith("False"), "hvm1 -h imported torch"


def subcommands(parser) -> dict[str, object]:
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def test_a_lazy_parser_builds_only_the_command_asked_for():
    for group in COMMAND_GROUPS:
        for name in group.COMMANDS:
            full = subcommands(build_parser(name, lazy=True))
            built = {command for command, sub in full.items() if sub.add_help}  # the light ones have no -h
            assert built == {name}, (group.__name__, built)
            assert isinstance(group.COMMANDS[name], Command)  # every command defined one way
    full = build_parser()
    assert set(subcommands(full)) == {name for group in COMMAND_GROUPS for name in group.COMMANDS}
    assert all(sub.add_help for sub in subcommands(full).values())


def test_version(capsys):
    from hvm1 import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"hvm1 {__version__}"


def test_the_console_command_returns_mains_status_with_the_live_objects_frozen(monkeypatch, capsys):
    import gc

    monkeypatch.setattr(sys, "argv", ["hvm1", "list"])
    try:
        assert console() == 0
        assert gc.get_freeze_count() > 0  # shutdown's collections skip them
    finally:
        gc.unfreeze()
    assert "mae_hvm1_none" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["hvm1", "info", "no_such_model"])
    try:
        assert console() == main(["info", "no_such_model"]) == 1
    finally:
        gc.unfreeze()


def test_every_command_takes_the_same_device_choices():
    from hvm1.devices import DEVICE_CHOICES

    checked = 0
    for name, sub in subcommands(build_parser()).items():
        for action in [a for a in sub._actions if "--device" in a.option_strings]:
            assert tuple(action.choices) == DEVICE_CHOICES, (name, action.choices)
            checked += 1
    assert checked >= 10  # every command that runs a model, training included


class _CutOff:
    """Pickled into a checkpoint, it stops torch.save half way, as Ctrl-C during a save does."""

    def __reduce__(self):
        raise KeyboardInterrupt


def test_ctrl_c_during_a_save_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    from hvm1 import catalog
    from hvm1.train.checkpointing import save_checkpoint

    target = tmp_path / "checkpoint-last.pth"
    save_checkpoint(target, {"step": 1, "weights": torch.ones(1000)})
    before = target.read_bytes()

    def cut_off_save(config, progress):
        save_checkpoint(target, {"step": 2, "weights": torch.zeros(1000), "cut": _CutOff()})

    monkeypatch.setattr(catalog, "list_models", cut_off_save)
    assert main(["list"]) == INTERRUPTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hvm1 list: interrupted; "), err
    assert "Traceback" not in err and "RuntimeError" not in err, err
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.slow
def test_ctrl_c_in_training_says_what_was_kept_and_the_run_resumes(tmp_path):
    videos = [fixture(VIDEOS / name) for name in ("box.mp4", "cup.mp4")]
    out_dir = tmp_path / "run"
    args = [
        "pretrain",
        *map(str, videos),
        "--checkpoint",
        str(fixture(MAE_CHECKPOINT)),
        *TINY_SET,
        "--out-dir",
        str(out_dir),
        "--batch-size",
        "1",
        "--repeat-aug",
        "1",
        "--epochs",
        "50",
        "--save-every",
        "1",
        "--num-workers",
        "0",
        "--no-tensorboard",
        "--precision",
        "fp32",
    ]
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "hvm1.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not (out_dir / "checkpoint-previous.pth").is_file() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == INTERRUPTED, err
    lines = [line for line in err.splitlines() if line.startswith("hvm1 pretrain:")]
    assert lines == [
        f"hvm1 pretrain: interrupted; the last checkpoint saved, {out_dir / 'checkpoint-last.pth'}, "
        f"is complete (a save cut short leaves only a temporary file): run the same command with "
        f"--resume auto to continue from it"
    ], err
    assert "Traceback" not in err, err
    from hvm1.train.checkpointing import load_training_checkpoint

    step = load_training_checkpoint(out_dir / "checkpoint-last.pth")["step"]
    resumed = run_hvm1(*args, "--max-steps", str(step + 1), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert load_training_checkpoint(out_dir / "checkpoint-last.pth")["step"] == step + 1


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("hub", ["offline", "unreachable"])
def test_a_model_that_cannot_be_fetched_fails_at_once_and_names_the_flag(tmp_path, hub):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    if hub == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    result = run_hvm1("complete", "--model", "mae_hvm1_none", "--out-dir", str(tmp_path / "out"), env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "--checkpoint /path/to/hvm1_none.pth in place of --model mae_hvm1_none" in lines[-1], result.stderr
    assert ("downloads are off" if hub == "offline" else "could not be reached") in lines[-1], result.stderr
    if hub == "offline":  # nothing announces a download that cannot happen
        assert len(lines) == 1 and "fetching" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_every_public_name_imports_on_first_use():
    import hvm1

    assert set(hvm1.__all__) == set(hvm1._EXPORTS)
    for name in hvm1.__all__:
        assert getattr(hvm1, name).__name__ == name


def test_every_dashed_flag_takes_the_published_underscore_spelling():
    checked = 0
    for name, sub in subcommands(build_parser()).items():
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and "-" in option[2:]:
                    spelled = "--" + option[2:].replace("-", "_")
                    assert sub._option_string_actions.get(spelled) is action, (name, option)
                    checked += 1
    assert checked > 50
    args = build_parser().parse_args(["complete", "--model", "mae_hvm1_none", "--out_dir", "x", "--num_vids", "2"])
    assert (str(args.out_dir), args.num_vids) == ("x", 2)
    assert "--out_dir" not in build_parser("complete", lazy=True).format_help()  # -h lists one spelling


def test_errors_name_the_flag_not_the_field(capsys):
    video = str(fixture(VIDEOS / "box.mp4"))
    tiny = ["--checkpoint", str(fixture(MAE_CHECKPOINT)), *TINY_SET]
    assert main(["complete", video, *tiny, "--mask-ratio", "1.0"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "hvm1 complete: error: --mask-ratio must be in [0, 1), got 1.0"
    assert main(["pretrain", video, *tiny, "--batch-size", "0", "--out-dir", "unused"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "hvm1 pretrain: error: invalid training config: --batch-size must be at least 1, got 0"
    ), err


def test_a_flag_has_one_placeholder_on_every_command():
    # Where they differ, the flag means another thing: an embedding file is no data folder, propagate's
    # --img-size is its short side, and score and propagate call their folder OUT in their own help.
    different_things = {"--img-size", "--out-dir", "--output", "--short-side", "--val"}
    placeholders: dict[str, set[str]] = {}
    for sub in subcommands(build_parser()).values():
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and action.nargs != 0:
                    placeholders.setdefault(option, set()).add(str(action.metavar))
    shared = {option: names for option, names in placeholders.items() if option not in different_things}
    assert all(len(names) == 1 for names in shared.values()), {o: n for o, n in shared.items() if len(n) > 1}
    assert placeholders["--out-dir"] == {"DIR", "OUT"}

"""`hvm1 surprise`: window losses equal `hvm1 score`'s, the outputs, paired evaluation on impossible events built
from the real videos, bad input, and flat memory on a long video."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest

import hvm1
from event_videos import FPS, decode_stretch, event_pair
from hvm1.data import read_clip
from hvm1.eval.paired import relative_accuracy
from hvm1.eval.scores import score_clip
from hvm1.eval.surprise import (
    EXCESS,
    MODEL,
    SurpriseConfig,
    hidden_frames,
    read_surprise_csv,
    surprise,
    window_losses,
)
from hvm1.viz.grid import Mp4Writer, write_mp4
from hvm1.zoo import load_model, preprocessing_for
from reference_data import MAE_CHECKPOINT, TINY_HEADS, VIDEOS, fixture, reference_heads


@pytest.fixture(scope="module")
def tiny():
    """The tiny reference MAE (56 px, 8 frames, tubelet 2: a 4 x 4 x 4 token grid)."""
    return load_model(fixture(MAE_CHECKPOINT), model_type="mae", **TINY_HEADS)


@pytest.fixture(scope="module")
def pairs_folder(tmp_path_factory) -> Path:
    """Two impossible events beside their continuous twins, from two real videos, and a pairs file naming them."""
    folder = tmp_path_factory.mktemp("pairs")
    thing = fixture(VIDEOS / "cup.mp4")
    vanish = event_pair(fixture(VIDEOS / "vtest.avi"), thing, folder / "videos", "vanish", start=10.0)
    jump = event_pair(fixture(VIDEOS / "box.mp4"), thing, folder / "videos", "jump", start=3.0)
    rows = [
        f"videos/{possible.name},videos/{impossible.name},{event}"
        for (possible, impossible), event in ((vanish, "vanish"), (jump, "jump"))
    ]
    (folder / "pairs.csv").write_text("possible,impossible,group\n" + "\n".join(rows) + "\n")
    return folder


def test_event_pairs_differ_only_from_the_event_on(pairs_folder: Path):
    event = round(1.5 * FPS)
    for possible, impossible in (("vtest10_possible", "vtest10_vanish"), ("box3_possible", "box3_jump")):
        one, other = (
            np.stack(decode_stretch(pairs_folder / f"videos/{name}.mp4", 0.0, 3.0, 96)).astype(int)
            for name in (possible, impossible)
        )
        difference = np.abs(one - other).mean(axis=(1, 2, 3))  # per frame
        # Before the event the twins differ only by how the encoder coded them; from it on, by the object.
        assert difference[:event].max() * 4 < difference[event:].min()


@pytest.mark.parametrize("mask_type", ["temporal", "center"])
def test_window_loss_is_score_loss(reference, mask_type):
    """For the same clip and mask, a window's losses are `hvm1 score`'s, model and baselines (float32, 1e-6)."""
    model = load_model(reference / "mae_checkpoint.pth", model_type="mae", **reference_heads(reference))
    preprocessing = preprocessing_for(model)
    preset = preprocessing.visualisation()
    clip, _ = preset.load(fixture(VIDEOS / "box.mp4"), start=2.0)
    hidden = hidden_frames(model.config.num_frames, model.config.t_patch_size, None, mask_type)
    window = window_losses(model, clip, hidden)
    rows = score_clip({MODEL: model}, clip, preset.mean, preset.std, mask_types=(mask_type,), mask_ratios=(0.5,))
    scored = {row.method: row.loss for row in rows}
    assert set(window.losses) == set(scored)
    for method, loss in window.losses.items():
        assert loss == pytest.approx(scored[method], abs=1e-6)
    assert window.mask.sum() == window.mask.numel() // 2


def test_hidden_frames_and_their_bad_values():
    default = hidden_frames(16, 2, None, "temporal")
    assert (default.first, default.last, default.count) == (8, 15, 8)
    center = hidden_frames(16, 2, 4, "center")
    assert (center.first, center.last) == (6, 9)  # 6 frames before, 6 after
    for grid in ((8, 16, 16), (4, 4, 4), (8, 3, 5)):
        for hidden in (default, hidden_frames(16, 2, 2, "temporal"), center):
            kept = math.prod(grid) - int(hidden.token_mask(grid).sum())
            assert int(math.prod(grid) * (1 - hidden.mask_ratio(grid))) == kept
    for frames, match in (
        (0, "hides no frame"),
        (16, "leaves no visible frame"),
        (18, "leaves no visible"),
        (3, "not a multiple of the model's tubelet"),
    ):
        with pytest.raises(ValueError, match=match):
            hidden_frames(16, 2, frames, "temporal")
    with pytest.raises(ValueError, match="do not split evenly"):
        hidden_frames(16, 2, 6, "center")  # 5 tubelets visible
    with pytest.raises(ValueError, match="mask_type"):
        hidden_frames(16, 2, 8, "random")


def config(out: Path, *videos: Path, **settings) -> SurpriseConfig:
    return SurpriseConfig(
        videos=videos,
        checkpoint=MAE_CHECKPOINT,
        overrides=TINY_HEADS,
        out_dir=out,
        device="cpu",
        precision="fp32",
        **settings,
    )


@pytest.mark.slow
def test_surprise_writes_every_output_and_pairs_them(pairs_folder: Path, tiny, tmp_path: Path):
    fixture(MAE_CHECKPOINT)
    report = surprise(config(tmp_path / "out", pairs=pairs_folder / "pairs.csv", resamples=200))
    out = tmp_path / "out"
    assert report.ok and len(report.videos) == 4 and not report.short
    windows = read_surprise_csv(out / "surprise.csv")
    with open(out / "surprise.csv") as handle:
        header = next(csv.reader(handle))
    assert header[6:] == ["model_loss", "mean_loss", "nearest_frame_loss", EXCESS]
    # 3 s videos, windows of 8 frames 4/30 s apart (0.93 s) every 0.5 s while their last frame is in the video.
    by_video: dict[str, list] = {}
    for window in windows:
        by_video.setdefault(window.video, []).append(window)
    assert sorted(len(v) for v in by_video.values()) == [5, 5, 5, 5]
    first = by_video[str(pairs_folder / "videos/box3_jump.mp4")]
    assert [w.start for w in first] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert first[2].hidden_start == pytest.approx(1.0 + 4 * 4 / 30) and first[2].end == pytest.approx(1.0 + 28 / 30)
    # A window's losses are those of the clip read_clip gives at its start.
    preset = preprocessing_for(tiny).visualisation()
    clip, _ = preset.load(first[3].video, start=first[3].start)
    again = window_losses(tiny, clip, hidden_frames(8, 2, None, "temporal"))
    assert again.losses == pytest.approx(first[3].losses, abs=1e-6)
    for window in windows:
        assert window.value(EXCESS) == window.losses[MODEL] - min(window.losses["mean"], window.losses["nearest_frame"])
    # The summary's max, mean and peak time per video and method agree with the windows.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hidden_frames"] == 4 and summary["mask_type"] == "temporal"
    for entry in summary["videos"]:
        rows = by_video[entry["video"]]
        model = [w.losses[MODEL] for w in rows]
        assert entry["surprise"][MODEL]["max"] == max(model)
        assert entry["surprise"][MODEL]["mean"] == pytest.approx(sum(model) / len(model))
        peak = rows[model.index(max(model))]
        assert entry["surprise"][MODEL]["peak_time"] == pytest.approx((peak.hidden_start + peak.hidden_end) / 2)
    # Paired figures for the model, each baseline and the excess, by max and by mean.
    figures = {(f["method"], f["aggregation"]): f for f in summary["pairs"]["figures"]}
    assert set(figures) == {(m, a) for m in (MODEL, "mean", "nearest_frame", EXCESS) for a in ("max", "mean")}
    surprises = {entry["video"]: entry["surprise"] for entry in summary["videos"]}
    pairs = [
        (str(pairs_folder / "videos/vtest10_possible.mp4"), str(pairs_folder / "videos/vtest10_vanish.mp4")),
        (str(pairs_folder / "videos/box3_possible.mp4"), str(pairs_folder / "videos/box3_jump.mp4")),
    ]
    for (method, aggregation), figure in figures.items():
        possible = [surprises[p][method][aggregation] for p, _ in pairs]
        impossible = [surprises[i][method][aggregation] for _, i in pairs]
        assert figure["relative_accuracy"] == relative_accuracy(possible, impossible)
        assert figure["interval"][0] <= figure["relative_accuracy"] <= figure["interval"][1]
        assert set(figure["groups"]) == {"vanish", "jump"}
    assert len(list(csv.reader(open(out / "pairs.csv")))) == 1 + 2 * len(figures)
    # The plot, and the error video: one frame per hidden predicted frame of each window.
    for stem in ("vtest10_possible", "box3_jump"):
        assert (out / f"{stem}_surprise.png").stat().st_size > 10_000
        with av.open(str(out / f"{stem}_errors.mp4")) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 5 * 4 and frames[0].shape[0] == 56


@pytest.mark.slow
def test_pairs_with_unreadable_videos_are_left_out_and_named(pairs_folder: Path, tmp_path: Path):
    fixture(MAE_CHECKPOINT)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 100)
    videos = pairs_folder / "videos"
    (tmp_path / "pairs.csv").write_text(
        f"{videos / 'box3_possible.mp4'},{videos / 'box3_jump.mp4'},jump\n"
        f"{videos / 'vtest10_possible.mp4'},missing.mp4,vanish\n"
        f"broken.mp4,{videos / 'vtest10_vanish.mp4'},vanish\n"
    )
    report = surprise(config(tmp_path / "out", pairs=tmp_path / "pairs.csv", resamples=100))
    assert [pair.impossible.name for pair in report.pairs] == ["box3_jump.mp4"]
    assert len(report.left_out) == 2 and not report.ok
    assert "missing.mp4" in report.left_out[0].path and "missing.mp4" in report.left_out[0].reason
    assert "broken.mp4" in report.left_out[1].reason
    assert {Path(s.path).name for s in report.skipped if s not in report.left_out} == {"missing.mp4", "broken.mp4"}
    assert len(report.videos) == 4 and all(f.pairs == 1 for f in report.figures)
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["pairs"]["evaluated"] == 1 and len(summary["pairs"]["left_out"]) == 2


@pytest.mark.slow
def test_a_video_shorter_than_one_window_is_one_padded_window(tmp_path: Path):
    fixture(MAE_CHECKPOINT)
    frames = decode_stretch(fixture(VIDEOS / "box.mp4"), 1.0, 0.5, 96)  # 0.5 s: a window spans 0.93 s
    short = write_mp4(np.stack(frames), tmp_path / "short.mp4", FPS)
    notes = []

    class Notes(hvm1.progress.Progress):
        def note(self, message: str) -> None:
            notes.append(message)

    report = surprise(config(tmp_path / "out", short), Notes())
    assert report.short == [short] and report.ok
    (window,) = report.videos[0].windows
    assert window.padded > 0 and window.start == 0.0
    assert any("shorter than one window" in note and str(short) in note for note in notes)
    clip = read_clip(short, num_frames=8, sampling_rate=4, start=0.0)
    assert clip.padded == window.padded


def test_bad_settings_are_named(tmp_path: Path):
    fixture(MAE_CHECKPOINT)
    video = fixture(VIDEOS / "box.mp4")
    for settings, match in (
        ({"stride": 0}, "stride"),
        ({"future_frames": 8}, "no visible frame"),
        ({"future_frames": 0}, "hides no frame"),
        ({"error_scale": 0.0}, "error_scale"),
    ):
        with pytest.raises(ValueError, match=match):
            surprise(config(tmp_path / "out", video, **settings))
    with pytest.raises(ValueError, match="name the videos"):
        surprise(config(tmp_path / "out"))
    (tmp_path / "bad.csv").write_text("a.mp4\n")
    with pytest.raises(ValueError, match="line 1"):
        surprise(config(tmp_path / "out", pairs=tmp_path / "bad.csv"))
    assert not (tmp_path / "out").exists()  # nothing written before the settings are checked


MEMORY_CHILD = textwrap.dedent("""
    import re, sys
    from pathlib import Path
    from hvm1.eval.surprise import SurpriseConfig, surprise
    video, checkpoint, out = map(Path, sys.argv[1:4])
    config = SurpriseConfig(videos=(video,), checkpoint=checkpoint, out_dir=out, device="cpu", precision="fp32",
                            stride=1.0, overrides={"num_heads": 4, "decoder_num_heads": 4})
    report = surprise(config)
    # This process's own peak (ru_maxrss would include the parent's peak, inherited through fork and exec).
    peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
    print(len(report.videos[0].windows), peak_kb)
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from Linux's /proc")
def test_memory_stays_flat_on_a_long_video(tmp_path: Path):
    """A video 4x longer peaks at about the same memory: windows are streamed, not the decoded video held.

    Both videos run past the reader's warm-up (its read-ahead and the decoder's buffers settle within the first
    keyframe interval, about 8 s here), so what is compared is how memory grows with the length alone."""
    fixture(MAE_CHECKPOINT)
    source = decode_stretch(fixture(VIDEOS / "vtest.avi"), 0.0, 8.0, 320)  # 240 frames of 320 x 240
    videos = {}
    for name, repeats in (("short", 3), ("long", 12)):  # 24 s and 96 s
        with Mp4Writer(tmp_path / f"{name}.mp4", FPS) as writer:
            for _ in range(repeats):
                for frame in source:
                    writer.write(frame)
        videos[name] = writer.path
    peaks = {}
    for name, path in videos.items():
        result = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(path), str(MAE_CHECKPOINT), str(tmp_path / name)],
            capture_output=True,
            text=True,
            check=True,
        )
        windows, peak_kb = map(int, result.stdout.split())
        peaks[name] = (windows, peak_kb * 1024)
    assert peaks["long"][0] > 3.5 * peaks["short"][0]
    # Holding the long video's extra frames as the model's windows read them (short side 88) would take 67 MB.
    held = 9 * len(source) * 88 * 117 * 3
    growth = peaks["long"][1] - peaks["short"][1]
    assert growth < held / 4, f"peak memory grew {growth / 1e6:.1f} MB from a 24 s to a 96 s video"


@pytest.mark.slow
def test_the_command_runs_pairs_and_names_what_it_left_out(pairs_folder: Path, tmp_path: Path, capsys):
    from hvm1.cli import main

    fixture(MAE_CHECKPOINT)
    videos = pairs_folder / "videos"
    (tmp_path / "pairs.csv").write_text(
        f"{videos / 'box3_possible.mp4'},{videos / 'box3_jump.mp4'}\n{videos / 'vtest10_possible.mp4'},gone.mp4\n"
    )
    common = [
        "--checkpoint",
        str(MAE_CHECKPOINT),
        "--set",
        "num_heads=4",
        "--set",
        "decoder_num_heads=4",
        "--precision",
        "fp32",
        "--device",
        "cpu",
    ]
    status = main(
        [
            "surprise",
            "--pairs",
            str(tmp_path / "pairs.csv"),
            *common,
            "--out-dir",
            str(tmp_path / "out"),
            "--resamples",
            "50",
            "--future-frames",
            "2",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 1
    assert "1 pair:" in out and "AUROC" in out and "gone.mp4" in err
    assert "3 videos read into" in err
    assert json.loads((tmp_path / "out/summary.json").read_text())["hidden_frames"] == 2
    status = main(
        ["surprise", str(videos / "box3_jump.mp4"), *common, "--stride", "0", "--out-dir", str(tmp_path / "none")]
    )
    assert status == 1 and "stride" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()

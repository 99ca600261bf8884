"""Timelines: `embed_videos(stride=...)` / `hvm1 embed --stride`: one row per window, each the window alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval_files import cut_clip
from hvm1.cli import main
from hvm1.data import read_windows
from hvm1.eval import embed_videos, embedding_preset, load_embeddings
from hvm1.eval.timelines import embedding_timelines
from hvm1.progress import Progress
from hvm1.zoo import preprocessing_for
from recorded_progress import RecordedProgress
from reference_data import TINY, TINY_SET, VIDEOS, fixture


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    """6 s of the street video (a window of the tiny model spans 7 x 8 frames at 30 fps: 1.87 s)."""
    return cut_clip(fixture(VIDEOS / "vtest.avi"), tmp_path_factory.mktemp("long") / "street.mp4", 5.0, seconds=6.0)


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """1 s of the box video: shorter than one window."""
    return cut_clip(fixture(VIDEOS / "box.mp4"), tmp_path_factory.mktemp("short") / "box.mp4", 2.0, seconds=1.0)


def test_each_window_is_embedded_as_its_clip_alone(encoder, street, tmp_path):
    out = tmp_path / "out.npz"
    result = embed_videos(encoder, [street], out, stride=1.0, batch_size=3)
    rows = load_embeddings(out)
    assert result.embedded == 1 and result.padded == [] and rows.settings["stride"] == 1.0
    timeline = embedding_timelines(rows)[str(street)]
    preset = embedding_preset(preprocessing_for(encoder))
    starts = [window.start for window in read_windows(street, 1.0, 8, 8, short_side=preset.short_side)]
    assert starts == [0.0, 1.0, 2.0, 3.0, 4.0]  # a window at 5 s would end after the last frame (5.97 s)
    assert timeline.values.shape == (5, 64) and timeline.values.dtype == np.float32
    np.testing.assert_allclose(timeline.times, [[start, start + 7 * 8 / 30] for start in starts], atol=1e-9)
    for start, embedding in zip(starts, timeline.values):
        clip, padded = preset.load(street, start=start)
        with torch.no_grad():
            alone = encoder(clip[None])[0]
        np.testing.assert_allclose(embedding, alone.numpy(), rtol=0, atol=1e-6)
        assert padded == 0


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_an_interrupted_strided_run_resumes_to_the_same_file(encoder, street, short, tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    videos = [street, short, tmp_path / "again.mp4"]
    videos[2].symlink_to(street)
    whole = embed_videos(encoder, videos, tmp_path / f"whole{suffix}", stride=1.5).embeddings

    class Interrupt(Progress):
        def advance(self, done: int, item: str = "") -> None:
            if done == 2:
                raise KeyboardInterrupt

    out = tmp_path / f"out{suffix}"
    with pytest.raises(KeyboardInterrupt):
        embed_videos(encoder, videos, out, stride=1.5, chunk_size=1, progress=Interrupt())
    resumed = embed_videos(encoder, videos, out, stride=1.5, chunk_size=1)
    assert (resumed.reused, resumed.embedded) == (2, 1)
    rows = load_embeddings(out)
    assert rows.paths == whole.paths and len(rows) == 3 + 1 + 3  # windows at 0, 1.5 and 3 s; one padded
    np.testing.assert_array_equal(rows.clip_times, whole.clip_times)
    np.testing.assert_allclose(rows.embeddings, whole.embeddings, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="stride=1.5 vs 2.0"):
        embed_videos(encoder, videos, out, stride=2.0)


def test_a_video_shorter_than_a_window_is_one_padded_window(encoder, short, tmp_path):
    progress = RecordedProgress()
    result = embed_videos(encoder, [short], stride=0.5, progress=progress)
    assert progress.stages() == [("start", 1, "video", "embed"), ("advance", 1, short.name), ("close",)]
    # 8 instants 0.27 s apart: those at 1.07, 1.33, 1.6 and 1.87 s come after the last frame (0.97 s)
    assert len(result.embeddings) == 1 and result.padded == [(str(short), 4)]
    timeline = embedding_timelines(result.embeddings)[str(short)]
    clip, padded = embedding_preset(preprocessing_for(encoder)).load(short, start=0.0)
    with torch.no_grad():
        np.testing.assert_allclose(timeline.values[0], encoder(clip[None])[0].numpy(), rtol=0, atol=1e-6)
    assert padded == 4


@pytest.mark.parametrize(
    "arguments", [{"stride": 0}, {"stride": -2.0}, {"stride": 1.0, "num_clips": 2}, {"stride": 1.0, "keep_clips": True}]
)
def test_bad_strides_are_refused(encoder, short, tmp_path, arguments):
    with pytest.raises(ValueError, match="stride"):
        embed_videos(encoder, [short], tmp_path / "out.npz", **arguments)
    assert not (tmp_path / "out.npz").exists()


def test_cli_embeds_windows_and_says_what_was_padded(street, short, tmp_path, capsys):
    out = tmp_path / "out.npz"
    argv = [
        "embed",
        str(street),
        str(short),
        "--checkpoint",
        str(TINY / "mae_checkpoint.pth"),
        *TINY_SET,
        "-o",
        str(out),
        "--stride",
        "2",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "4 windows every 2 s of 2 videos (2 embedded now, 0 already there)" in captured.out
    assert f"{short} is shorter than one window" in captured.err
    assert [len(timeline) for timeline in embedding_timelines(load_embeddings(out)).values()] == [3, 1]


def test_cli_refuses_a_stride_of_zero_before_loading_a_model(tmp_path, capsys):
    argv = [
        "embed",
        str(tmp_path),
        "--checkpoint",
        str(tmp_path / "missing.pth"),
        "-o",
        str(tmp_path / "o.npz"),
        "--stride",
        "0",
    ]
    assert main(argv) != 0
    assert "stride must be a number of seconds above 0, got 0.0" in capsys.readouterr().err


@pytest.mark.parametrize("views", [(1, 1), (1, 3)])
def test_window_probabilities_are_each_window_classified_alone(classifier, street, views):
    from hvm1.eval.evaluation import view_plan
    from hvm1.eval.timelines import window_probabilities

    preset = view_plan(classifier, preprocessing_for(classifier), views=views).preset
    seen = []
    timeline = window_probabilities(classifier, preset, street, 2.0, batch_size=2, on_window=seen.append)
    assert timeline.values.shape == (3, 7) and [window.start for window in seen] == [0.0, 2.0, 4.0]
    np.testing.assert_allclose(timeline.values.sum(axis=1), 1.0, atol=1e-6)
    for window, probabilities in zip(seen, timeline.values):
        clip, _ = preset.load(street, start=window.start)  # (C, T, H, W), or (3, C, T, H, W) for three crops
        with torch.no_grad():
            logits = classifier(clip if clip.dim() == 5 else clip[None]).mean(dim=0)
        np.testing.assert_allclose(probabilities, logits.double().softmax(dim=0).numpy(), rtol=0, atol=1e-6)


def test_window_probabilities_need_a_head(encoder, street):
    from hvm1.eval.timelines import window_probabilities

    with pytest.raises(ValueError, match="classification head"):
        window_probabilities(encoder, embedding_preset(preprocessing_for(encoder)), street, 1.0)

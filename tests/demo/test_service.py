"""The demo's work without the page: limits, unreadable uploads, one completion, the files it keeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import av
import numpy as np
import pytest
import torch

from hvm1.cli import build_parser
from hvm1.demo import DemoInputError, DemoResult, DemoService, UploadLimits
from hvm1.eval.scores import score_clip
from hvm1.viz import complete_clip, completion_grid
from hvm1.viz.pca import feature_map_grid, patch_token_grid, pca_feature_maps
from recorded_progress import RecordedProgress

TILE, FRAMES = 56, 8


def grid_shape(rows: int, columns: int) -> tuple[int, int, int]:
    return rows * (TILE + 1) + 1, columns * (TILE + 1) + 1, 3


def finished(stages: Iterator[DemoResult]) -> DemoResult:
    """The last (complete) result of `DemoService.stages`."""
    *_, result = stages
    return result


def make_service(tiny_models, tmp_path, limits=UploadLimits(), with_vit=True) -> DemoService:
    mae, vit = tiny_models
    return DemoService(
        mae, tmp_path, mae_name="tiny", vit=vit if with_vit else None, vit_name="tiny vit", limits=limits
    )


def test_limits_refuse_long_and_large_uploads_naming_them(tiny_models, videos_dir, tmp_path):
    service = make_service(tiny_models, tmp_path, UploadLimits(max_megabytes=5, max_seconds=20))
    with pytest.raises(DemoInputError, match=r"^vtest\.avi is 5\.4 MB; this demo takes videos up to 5 MB$"):
        service.check_upload(videos_dir / "vtest.avi")
    with pytest.raises(DemoInputError, match=r"^tree\.avi is 30 s long; this demo takes videos up to 20 s$"):
        service.check_upload(videos_dir / "tree.avi")
    service.check_upload(videos_dir / "box.mp4")  # 1.9 MB, 15 s


def test_unreadable_upload_is_named_without_its_server_path(tiny_models, tmp_path):
    service = make_service(tiny_models, tmp_path)
    fake = tmp_path / "upload-folder" / "holiday.mp4"
    fake.parent.mkdir()
    fake.write_text("this is not a video")
    with pytest.raises(DemoInputError) as caught:
        service.read(fake)
    assert str(caught.value).startswith("holiday.mp4 not a video file FFmpeg can read")
    assert str(fake.parent) not in str(caught.value)


def test_an_upload_gone_from_the_server_is_named_without_its_path(tiny_models, tmp_path):
    service = make_service(tiny_models, tmp_path)
    gone = tmp_path / "gradio" / "0123abcd" / "cup.mp4"
    with pytest.raises(DemoInputError, match=r"^cup\.mp4 is no longer on the server: upload it again$"):
        service.read(gone)


def test_run_gives_the_library_picture_animation_and_attention(tiny_models, videos_dir, tmp_path):
    service = make_service(tiny_models, tmp_path)
    clips = service.read(videos_dir / "box.mp4")
    progress = RecordedProgress()
    result = finished(service.stages(clips, "random", 0.75, seed=3, progress=progress))
    assert result.picture.shape == grid_shape(3, FRAMES)
    mae = tiny_models[0]
    expected = complete_clip(mae, clips.mae, "random", 0.75, torch.Generator().manual_seed(3))
    assert np.array_equal(result.picture, completion_grid(expected, (0.45,) * 3, (0.225,) * 3))
    assert result.attention.shape == grid_shape(2, FRAMES // 2)  # frames row + mean row, t = 8 / 2 tokens
    vit = tiny_models[1]
    colours = pca_feature_maps(patch_token_grid(vit, clips.vit)[None]).maps[0]
    assert np.array_equal(result.feature_maps, feature_map_grid(clips.vit, colours, (0.45,) * 3, (0.225,) * 3, 2))
    assert result.animation.suffix == f".{service.animation_format}"
    with av.open(str(result.animation)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == FRAMES and frames[0].shape == (TILE + 2, 3 * (TILE + 1) + 1, 3)
    assert result.precision == "fp32 on cpu" and result.seconds > 0
    # five steps (complete, draw, score, attention, pca), each said as it begins, all done at the end
    assert progress.stages() == [
        ("start", 5, "step", "demo"),
        *(("advance", done, "") for done in range(6)),
        ("close",),
    ]
    assert [call[0] for call in progress.calls[1:-2]] == ["advance", "note"] * 5

    # The scores are `hvm1 score`'s for the same seeded mask, without its second forward pass.
    published = score_clip(
        {"MAE": mae},
        clips.mae,
        (0.45,) * 3,
        (0.225,) * 3,
        mask_types=["random"],
        mask_ratios=[0.75],
        generator=torch.Generator().manual_seed(3),
    )
    assert [score.method for score in result.scores] == [row.method for row in published]
    for score, row in zip(result.scores, published):
        assert score.psnr == pytest.approx(row.psnr, rel=1e-5) and score.ssim == pytest.approx(row.ssim, rel=1e-5)


def test_stages_show_the_completion_before_the_scores_and_maps(tiny_models, videos_dir, tmp_path):
    service = make_service(tiny_models, tmp_path)
    stages = list(service.stages(service.read(videos_dir / "cup.mp4"), "temporal", 0.5))
    assert [(stage.scores != (), stage.attention is not None, stage.done) for stage in stages] == [
        (False, False, False),
        (True, False, False),
        (True, True, True),
    ]
    assert all(np.array_equal(stage.picture, stages[0].picture) for stage in stages)
    assert stages[-1].seconds >= stages[0].seconds == stages[-1].completion_seconds
    assert stages[-1].feature_maps is not None


def test_the_models_run_at_the_precision_asked_for(tiny_models, videos_dir, tmp_path):
    mae, vit = tiny_models
    service = DemoService(mae, tmp_path, mae_name="tiny", vit=vit, vit_name="tiny vit", precision="bf16")
    clips = service.read(videos_dir / "cup.mp4")
    seen = []
    hook = mae.blocks[0].attn.q.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    try:
        result = finished(service.stages(clips, "center", 0.5, score=False))
    finally:
        hook.remove()
    assert seen == [torch.bfloat16] and result.precision == "bf16 autocast on cpu" and result.scores == ()
    assert result.done and result.attention is not None
    assert next(mae.parameters()).dtype == torch.float32  # autocast: the weights stay float32


def test_results_of_older_runs_are_removed_and_runs_take_turns(tiny_models, videos_dir, tmp_path):
    service = make_service(tiny_models, tmp_path, with_vit=False)
    clips = service.read(videos_dir / "cup.mp4")
    results, running, overlaps = [], [], []
    original = service.mae.forward

    def watched(*args, **kwargs):
        running.append(1)
        overlaps.append(len(running))
        try:
            return original(*args, **kwargs)
        finally:
            running.pop()

    service.mae.forward = watched
    try:
        threads = [
            threading.Thread(target=lambda: results.append(finished(service.stages(clips, "center", 0.5))))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        del service.mae.forward
    assert len(results) == 4 and max(overlaps) == 1  # never two forwards at once
    assert results[0].attention is None and results[0].feature_maps is None
    kept = sorted(path.name for path in (tmp_path / "results").iterdir())
    assert len(kept) == 2 and all(
        result.animation.exists() == (result.animation.parent.name in kept) for result in results
    )


def test_demo_command_binds_to_loopback_and_needs_no_model_flag():
    from hvm1.cli.command import config_from_args
    from hvm1.demo.command import DemoConfig, serve_demo

    config = config_from_args(DemoConfig, build_parser().parse_args(["demo"]))
    assert (config.host, config.port, config.model, config.checkpoint, config.vit_model) == (
        "127.0.0.1",
        None,
        None,
        None,
        None,
    )
    both = config_from_args(
        DemoConfig, build_parser().parse_args(["demo", "--vit-model", "vit_hvm1_none", "--vit-checkpoint", "v.pth"])
    )
    with pytest.raises(ValueError, match="one of --vit-model NAME and --vit-checkpoint FILE"):
        serve_demo(both)


def test_a_finetuned_vit_with_names_gives_its_top_five_classes(tiny_models, videos_dir, tmp_path):
    import copy

    from hvm1.demo.page import class_table

    mae, vit = tiny_models
    named = copy.deepcopy(vit)
    named.class_names = ("pour", "stir", "cut", "peel", "wash", "fold", "open")
    service = DemoService(mae, tmp_path, mae_name="tiny", vit=named, vit_name="vit_hvm1_ssv2-50shot")
    clips = service.read(videos_dir / "box.mp4")
    result = finished(service.stages(clips, "center", 0.5, score=False))
    with torch.inference_mode():
        probabilities = named(clips.vit[None]).double().softmax(dim=1)[0]
    order = probabilities.argsort(descending=True)[:5].tolist()
    assert [ranked.name for ranked in result.top_classes] == [named.class_names[index] for index in order]
    np.testing.assert_allclose(
        [ranked.probability for ranked in result.top_classes], probabilities[order].numpy(), atol=1e-5
    )
    assert f"| 1 | {named.class_names[order[0]]} |" in class_table(result)
    unnamed = finished(make_service(tiny_models, tmp_path / "plain").stages(clips, "center", 0.5, score=False))
    assert unnamed.top_classes == () and class_table(unnamed) == ""

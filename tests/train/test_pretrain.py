"""MAE pretraining: the loss falls, the run folder is complete and loadable, bad data is reported, NaN stops."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import hvm1
from hvm1.cli import main
from hvm1.data import TrainClips, video_eval_preset, video_train_preset
from hvm1.distributed import DistributedContext
from hvm1.train import PretrainConfig, TrainingError, pretrain, read_metrics
from hvm1.train.distributed import ShardedSampler
from hvm1.train.optim import autocast_dtype, learning_rate, pretraining_param_groups
from hvm1.zoo import VIDEO_MEAN, VIDEO_STD
from reference_data import MAE_CHECKPOINT, TINY_HEADS, TINY_SET
from train_helpers import tiny_pretrain_config

FIXED = video_eval_preset(56, 8, VIDEO_MEAN, VIDEO_STD, sampling_rate=8)


@pytest.mark.slow
def test_mae_loss_halves_overfitting_two_clips(small_videos, tmp_path):
    config = tiny_pretrain_config(tmp_path / "run", epochs=80, lr=3e-3)
    result = pretrain(small_videos[1::2], config, preset=FIXED)
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-5:]) / 5
    assert result.steps == 80
    assert last <= 0.5 * first, f"loss went from {first:.3f} to {last:.3f}"


def test_cli_run_folder_is_complete_and_loadable(small_videos, tmp_path):
    out = tmp_path / "run"
    status = main(
        [
            "pretrain",
            *map(str, small_videos),
            "--checkpoint",
            str(MAE_CHECKPOINT),
            *TINY_SET,
            "--out-dir",
            str(out),
            "--batch-size",
            "2",
            "--repeat-aug",
            "2",
            "--max-steps",
            "2",
            "--num-workers",
            "1",
            "--no-tensorboard",
        ]
    )
    assert status == 0
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["train"]["lr"] == 1e-4 and resolved["train"]["betas"] == [0.9, 0.95]
    assert resolved["args"]["mask_ratio"] == 0.9 and resolved["args"]["num_frames"] == 8
    records = read_metrics(out)
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        assert {"loss", "lr", "grad_norm", "clips_per_s", "data_wait_s"} <= record.keys()
    payload = torch.load(out / "checkpoint-last.pth", weights_only=False)
    assert {"model", "optimizer", "epoch", "scaler", "args", "step", "sampler", "rng"} <= payload.keys()
    assert isinstance(payload["args"], argparse.Namespace) and payload["step"] == 2
    assert sorted(payload["optimizer"]["state"])[:2] == [0, 1]  # torch.optim numbering, as published
    model = hvm1.load_model(out / "checkpoint-last.pth")
    start = hvm1.load_model(MAE_CHECKPOINT, **TINY_HEADS)
    assert model.config == start.config
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values()))
    assert changed


def test_existing_run_needs_resume(small_videos, tmp_path):
    config = tiny_pretrain_config(tmp_path / "run", max_steps=1)
    pretrain(small_videos[:2], config, preset=FIXED)
    with pytest.raises(ValueError, match="--resume auto"):
        pretrain(small_videos[:2], config, preset=FIXED)


def test_bad_video_is_reported_and_skipped_not_replaced(small_videos, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for video in small_videos[:2]:
        (data / video.name).symlink_to(video)
    (data / "broken.mp4").write_text("not a video")
    config = tiny_pretrain_config(tmp_path / "run", batch_size=3, epochs=1)
    result = pretrain(data, config, preset=FIXED)
    assert [Path(item.path).name for item in result.skipped] == ["broken.mp4"]
    (record,) = read_metrics(tmp_path / "run")
    # The rate counts the clips trained on (2 readable videos x 1 clip), not the files asked for.
    assert record["clips_per_s"] * record["step_s"] == pytest.approx(2)
    assert not torch.isnan(torch.tensor(record["loss"]))
    (skipped,) = read_metrics(tmp_path / "run", kind="skipped")
    assert skipped["path"].endswith("broken.mp4") and skipped["reason"]


class PoisonedPreset:
    """Reads clips with a fixed preset, but from the `poison_from`-th read on returns NaN pixels."""

    def __init__(self, poison_from: int) -> None:
        self.reads = 0
        self.poison_from = poison_from

    def load(self, path, start=None, generator=None):
        self.reads += 1
        clip, padded = FIXED.load(path, generator=generator)
        return (clip * float("nan") if self.reads >= self.poison_from else clip), padded


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(small_videos, tmp_path):
    config = tiny_pretrain_config(tmp_path / "run", batch_size=1, epochs=2, save_every=1)
    with pytest.raises(TrainingError, match=r"loss nan at step 4 .*last good checkpoint is .*checkpoint-last"):
        pretrain(small_videos, config, preset=PoisonedPreset(poison_from=4))
    payload = torch.load(tmp_path / "run" / "checkpoint-last.pth", weights_only=False)
    assert payload["step"] == 3
    assert all(torch.isfinite(value).all() for value in payload["model"].values())


def test_pretraining_decays_all_but_1d_parameters_and_biases_as_published():
    # The published pretraining exempts only 1-D parameters and names ending in `.bias`: the position
    # embeddings and the three tokens are 3-D and ARE decayed (finetuning differs; see test_finetune).
    model = hvm1.load_model(MAE_CHECKPOINT, **TINY_HEADS)
    decayed, exempt = pretraining_param_groups(model, 0.05)
    assert (decayed["weight_decay"], exempt["weight_decay"]) == (0.05, 0.0)
    parameters = dict(model.named_parameters())
    assert set(exempt["names"]) == {n for n, p in parameters.items() if p.ndim == 1 or n.endswith(".bias")}
    assert set(decayed["names"]) == parameters.keys() - set(exempt["names"])
    embeddings = {
        "cls_token",
        "decoder_cls_token",
        "mask_token",
        "pos_embed_spatial",
        "pos_embed_temporal",
        "pos_embed_class",
        "decoder_pos_embed_spatial",
        "decoder_pos_embed_temporal",
        "decoder_pos_embed_class",
    }
    assert embeddings <= set(decayed["names"]) and all(parameters[n].ndim == 3 for n in embeddings)
    assert {"norm.weight", "blocks.0.attn.q.bias", "decoder_norm.bias"} <= set(exempt["names"])


def test_every_random_choice_of_a_sample_depends_only_on_seed_epoch_and_index(small_videos):
    preset = video_train_preset(56, 8, VIDEO_MEAN, VIDEO_STD, (64, 80), (0.5, 1.0))
    clips = TrainClips(small_videos, preset, repeat_aug=2, seed=3, mask_tokens=64)
    first = clips[(1, 2)]
    clips[(0, 0)]  # reading other samples in between changes nothing
    again = TrainClips(small_videos, preset, repeat_aug=2, seed=3, mask_tokens=64)[(1, 2)]
    assert torch.equal(first.video, again.video) and torch.equal(first.noise, again.noise)
    assert not torch.equal(first.video[0], first.video[1])  # two different clips of one video
    other_epoch = clips[(2, 2)]
    assert not torch.equal(first.noise, other_epoch.noise)


def test_sharded_sampler_splits_each_global_batch_across_ranks():
    single = list(ShardedSampler(10, 4, DistributedContext(), seed=1))
    assert len(single) == 8  # two global batches of 4; the rest is dropped
    ranks = [ShardedSampler(10, 2, DistributedContext(rank=r, world_size=2), seed=1) for r in range(2)]
    shards = [list(sampler) for sampler in ranks]
    for batch in range(2):
        together = {i for shard in shards for i in shard[batch * 2 : batch * 2 + 2]}
        assert together == set(single[batch * 4 : batch * 4 + 4])
    ranks[1].set_epoch(0, start_batch=1)
    assert list(ranks[1]) == shards[1][2:]
    ranks[1].set_epoch(1)
    assert [index for _, index in ranks[1]] != [index for _, index in shards[1]]


def test_activation_checkpointing_changes_nothing_but_memory(small_videos, tmp_path):
    losses = [
        pretrain(
            small_videos[:2],
            tiny_pretrain_config(tmp_path / name, max_steps=3, epochs=3, grad_checkpointing=on),
            preset=FIXED,
        ).losses
        for name, on in (("plain", False), ("checkpointed", True))
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


@pytest.mark.parametrize("bf16_units", [True, False])
def test_training_precision_follows_the_device_policy(monkeypatch, bf16_units):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: bf16_units, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16_units, raising=False)
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if bf16_units else None)
    assert autocast_dtype("bf16", cpu) == torch.bfloat16 and autocast_dtype("fp32", cpu) is None
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        autocast_dtype("fp16", cpu)


def test_learning_rate_warms_up_then_stays_or_follows_a_half_cosine():
    constant = PretrainConfig(out_dir="-", lr=1e-3, warmup_steps=4)
    assert [learning_rate(constant, step, 10) for step in (0, 3, 4, 9)] == pytest.approx([2.5e-4, 1e-3, 1e-3, 1e-3])
    cosine = PretrainConfig(out_dir="-", lr=1e-3, min_lr=1e-5, lr_schedule="cosine")
    assert learning_rate(cosine, 0, 10) == pytest.approx(1e-3)
    assert learning_rate(cosine, 5, 10) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cosine, 10, 10) == pytest.approx(1e-5)


def test_data_workers_give_the_in_process_losses_over_epochs(small_videos, tmp_path):
    # Workers are started once per run (persistent) and, on the CPU, spawned rather than forked: every epoch's
    # draws must still reach them through the sampler's (epoch, index) keys.
    from hvm1.train.loop import worker_options

    assert worker_options(2, torch.device("cpu")) == {
        "num_workers": 2,
        "persistent_workers": True,
        "multiprocessing_context": "spawn",
    }
    assert worker_options(0, torch.device("cpu")) == {"num_workers": 0}
    runs = {}
    for workers in (0, 1):
        config = tiny_pretrain_config(tmp_path / f"run{workers}", epochs=3, num_workers=workers, precision="fp32")
        runs[workers] = pretrain(small_videos[:4], config).losses
    assert len(runs[0]) == 6 and runs[1] == runs[0]
    assert len(set(runs[0])) == 6  # each epoch drew new clips

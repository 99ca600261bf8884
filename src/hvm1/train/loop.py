"""The training loop both jobs share: accumulation, distributed steps, checkpoints, evaluation, metrics.

`pretrain` and `finetune` describe their job as a `Task` (the model, the samples, its parameter groups, how
a micro-batch becomes a loss, how to evaluate) and hand it to `run_task`, which runs the same loop on one CPU,
on many GPUs under torchrun (DDP, or FSDP2 with `fsdp`), from scratch or resumed to the micro-batch. The
settings are `config.TrainConfig`, the optimizer and precision come from `optim`, the checkpoint payload
from `checkpointing`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from hvm1.data import Skipped, TrainBatch, TrainClips, collate_train, sample_generator
from hvm1.distributed import DistributedContext, all_gather_objects, all_reduce_sum
from hvm1.models import VideoMAE, VideoViT

from .checkpointing import (
    BEST,
    LAST,
    PREVIOUS,
    RunPosition,
    load_newest_checkpoint,
    load_training_checkpoint,
    restore_rng,
    resume_position,
    rng_state,
    run_checkpoints,
    save_checkpoint,
    training_payload,
)
from .config import TrainConfig
from .distributed import (
    ShardedSampler,
    full_model_state,
    full_optimizer_state,
    gradient_sync,
    load_full_state,
    wrap_model,
)
from .metrics import MetricsWriter
from .optim import autocast_dtype, learning_rate, make_optimizer

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """A run that had to stop (a non-finite loss, data that gives no full step): says why and what was kept."""


@dataclass
class Task:
    """One training job for `run_task`.

    `model`: the plain model; `dataset`: its samples; `param_groups`: parameter names per group with the
    group's `weight_decay` and `lr_scale`; `loss(model, batch)` -> (mean loss over the micro-batch's clips,
    metrics summed over them); `empty_batch()`: a zero-weight stand-in for a micro-batch whose files were all
    skipped (every rank must run the model in step); `evaluate(model)` -> metrics (collective), run after
    every epoch; `select`: the metric that picks `checkpoint-best.pth`; `args`: written as the checkpoints'
    `args`.
    """

    model: VideoViT | VideoMAE
    dataset: TrainClips
    param_groups: list[dict[str, Any]]
    loss: Callable[[nn.Module, TrainBatch], tuple[torch.Tensor, dict[str, float]]]
    empty_batch: Callable[[], TrainBatch]
    args: dict[str, Any]
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None
    select: str | None = None


# What ended a run (`TrainResult.stopped_by`).
STOPPED_BY = ("epochs", "max_steps", "nothing_left")


def worker_options(num_workers: int, device: torch.device) -> dict[str, Any]:
    """DataLoader arguments for `num_workers` data workers of a training job on `device`.

    The workers are persistent: started once per run, not again at every epoch. On the CPU they are also
    started fresh ('spawn') instead of forked: a forked worker shares every page of the parent, whose optimizer
    step then rewrites all of its weights, gradients and AdamW moments, so each step after a fork copied the
    whole training state page by page (benchmarks/bench_train_parts.py times an epoch's first step both ways;
    the copies would also stay alive in a persistent forked worker). On a GPU the state lives in device memory and
    forking stays the fast start."""
    if num_workers == 0:
        return {"num_workers": 0}
    context = "spawn" if device.type == "cpu" else None
    return {"num_workers": num_workers, "persistent_workers": True, "multiprocessing_context": context}


@dataclass
class TrainResult:
    """What a run did: optimizer `steps` done in all (resumed runs included), the `losses` of the steps this
    call ran, the checkpoints kept, the best `select` value, the last evaluation, and the files skipped.

    `stopped_by` says which limit ended it: 'epochs' (the last epoch was done), 'max_steps', or 'nothing_left'
    (a resumed run that had already reached its limits: nothing was trained and no file changed);
    `steps_per_epoch` and `total_steps` (the smaller of the two limits) are the run's.
    """

    out_dir: Path
    steps: int
    losses: list[float]
    last_checkpoint: Path | None
    best_checkpoint: Path | None = None
    best_value: float | None = None
    last_eval: dict[str, float] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    stopped_by: str = "epochs"
    steps_per_epoch: int = 0
    total_steps: int = 0


class _Run:
    """The state of one `run_task` call (kept in one place so that saving and resuming see the same)."""

    def __init__(self, task: Task, config: TrainConfig, context: DistributedContext) -> None:
        self.task, self.config, self.context = task, config, context
        self.out_dir = Path(config.out_dir)
        model = task.model.to(context.device)
        if config.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if config.compile:
            for block in model.transformer_blocks():
                block.compile()
        self.autocast = autocast_dtype(config.precision, context.device)
        if config.fsdp and self.autocast == torch.float16:
            raise ValueError("fp16 with --fsdp is not supported: use bf16")
        self.model = wrap_model(model, context, config.fsdp)
        self.group_names = [group["names"] for group in task.param_groups]
        self.optimizer = make_optimizer(task.model, task.param_groups, config)
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast == torch.float16 else None
        self.sampler = ShardedSampler(len(task.dataset), config.batch_size, context, config.seed)
        self.steps_per_epoch = self.sampler.batches_per_epoch // config.accum_iter
        if self.steps_per_epoch == 0:
            raise TrainingError(
                f"{len(task.dataset)} files give no full step of {config.batch_size} files x "
                f"{context.world_size} ranks x {config.accum_iter} accumulation steps: lower --batch-size or "
                f"--accum-iter, or add data"
            )
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.step = self.epoch = self.batches = 0
        # The epoch so far: sum of the step losses and their count (kept in checkpoints, so that a resumed
        # run writes the epoch-mean loss an uninterrupted one would).
        self.epoch_loss = [0.0, 0]
        self.best_value: float | None = None
        self.last_checkpoint: Path | None = None
        self.best_checkpoint: Path | None = None
        self.metrics: MetricsWriter  # made by start(), with the run folder
        self.nothing_left = False  # a resumed run already at its limits: start() and run() change nothing

    # ---- resume and save ---------------------------------------------------------------------------------

    def start(self) -> None:
        config, context = self.config, self.context
        found = None
        if config.resume == "auto":
            # Every rank reads (memory-maps) the same file; rank 0 alone renames damaged ones.
            found = load_newest_checkpoint(self.out_dir, set_aside=context.is_main)
        elif config.resume:
            found = (Path(config.resume), load_training_checkpoint(config.resume))
        elif run_checkpoints(self.out_dir):
            raise ValueError(
                f"{self.out_dir} already holds a checkpoint: pass --resume auto to continue that run, or choose "
                f"another --out-dir"
            )
        if found is None:
            torch.manual_seed(sample_generator(config.seed, context.rank).initial_seed())
        else:
            self._resume(*found)
            if self.step >= self.total_steps or self.epoch >= config.epochs:
                self.nothing_left = True
                logger.info("%s is at step %d of %d: nothing left to do", found[0], self.step, self.total_steps)
                return
        if context.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            resolved = {
                "train": dataclasses.asdict(config),
                "args": self.task.args,
                "world_size": context.world_size,
                "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps,
            }
            (self.out_dir / "config.json").write_text(json.dumps(resolved, indent=2, default=str) + "\n")
        # A resumed run writes again the steps after its checkpoint: their first records go.
        self.metrics = MetricsWriter(
            self.out_dir,
            enabled=context.is_main,
            tensorboard=config.tensorboard,
            resumed_at=None if found is None else self.step,
        )

    def _resume(self, path: Path, payload: dict[str, Any]) -> None:
        self._check_same_steps(path, payload)
        load_full_state(self.model, self.optimizer, payload["model"], payload["optimizer"], self.group_names)
        if self.scaler is not None and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        position = resume_position(payload, path, self.config.batch_size, self.context.world_size)
        self.step, self.epoch, self.batches = position.step, position.epoch, position.batches
        self.best_value, self.epoch_loss = position.best_value, position.epoch_loss
        self.last_checkpoint = path
        best = self.out_dir / BEST
        self.best_checkpoint = best if best.is_file() else None
        restore_rng(payload, path, self.config.seed, self.context.rank, self.context.world_size)
        logger.info("resumed from %s at step %d (epoch %d, micro-batch %d)", path, self.step, self.epoch, self.batches)

    def _check_same_steps(self, path: Path, payload: dict[str, Any]) -> None:
        # A step is batch_size x accum_iter x world_size files: another count makes other steps (another
        # length of epoch, of schedule, another lr), and the run would not be the one it continues.
        args, config = payload.get("args"), self.config
        then = [getattr(args, "batch_size", None), getattr(args, "accum_iter", None), payload["rng"]["world_size"]]
        if None in then:
            return  # written before checkpoints recorded it
        now = [config.batch_size, config.accum_iter, self.context.world_size]
        if math.prod(then) != math.prod(now):

            def spelled(values: list[int]) -> str:
                ranks = f"{values[2]} rank{'s' if values[2] != 1 else ''}"
                return (
                    f"--batch-size {values[0]} x --accum-iter {values[1]} x {ranks} = {math.prod(values)} files a step"
                )

            raise ValueError(
                f"{path} was written by a run of {spelled(then)}; this one asks for {spelled(now)}, which would "
                f"make other steps (epoch length, schedule and lr). Resume with {math.prod(then)} files a step"
                + (f" (--batch-size {then[0]} --accum-iter {then[1]})" if then[2] == now[2] else "")
                + ", or start a new run in another --out-dir"
            )

    def save(self, best: bool) -> None:
        # Collectives first: every rank takes part, then rank 0 alone writes.
        model_state = full_model_state(self.model)
        optimizer_state = full_optimizer_state(self.model, self.optimizer)
        states = all_gather_objects(rng_state(), self.context)
        if not self.context.is_main:
            return
        position = RunPosition(self.step, self.epoch, self.batches, self.best_value, self.epoch_loss)
        payload = training_payload(
            model_state,
            optimizer_state,
            self.scaler.state_dict() if self.scaler is not None else {},
            self.task.args,
            position,
            self.config.batch_size,
            self.context.world_size,
            states,
        )
        self.last_checkpoint = save_checkpoint(self.out_dir / LAST, payload, keep_previous=PREVIOUS)
        if best:
            self.best_checkpoint = save_checkpoint(self.out_dir / BEST, payload)
        logger.info("step %d: saved %s%s", self.step, self.last_checkpoint, " and the best" if best else "")

    # ---- the loop ------------------------------------------------------------------------------------------

    def run(self, on_record: Callable[[dict[str, Any]], None] | None) -> TrainResult:
        config, context = self.config, self.context
        loader = DataLoader(
            self.task.dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            collate_fn=collate_train,
            pin_memory=context.device.type == "cuda",
            generator=torch.Generator(),  # leaves the global generator (drop path) alone
            **worker_options(config.num_workers, context.device),
        )
        losses: list[float] = []
        skipped: list[Skipped] = []
        last_eval = None
        if self.nothing_left:
            return self._result(losses, skipped, last_eval, "nothing_left")
        while self.epoch < config.epochs and self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, self.batches)
            batches = iter(loader)
            while (
                self.batches + config.accum_iter <= self.steps_per_epoch * config.accum_iter
                and self.step < self.total_steps
            ):
                record, step_skipped = self._train_step(batches)
                skipped += step_skipped
                losses.append(record["loss"])
                self._emit(record, on_record)
                self.epoch_loss = [self.epoch_loss[0] + record["loss"], self.epoch_loss[1] + 1]
                self.batches += config.accum_iter
                epoch_done = self.batches >= self.steps_per_epoch * config.accum_iter
                is_best = False
                if epoch_done:
                    self._emit_epoch(on_record)
                    if self.task.evaluate is not None:
                        last_eval, is_best = self._evaluate(self.task.evaluate, on_record)
                    self.epoch, self.batches, self.epoch_loss = self.epoch + 1, 0, [0.0, 0]
                if epoch_done or self.step % config.save_every == 0 or self.step >= self.total_steps:
                    self.save(is_best)
                if epoch_done:
                    break
        self.metrics.close()
        by_max_steps = config.max_steps is not None and self.step >= config.max_steps and self.epoch < config.epochs
        return self._result(losses, skipped, last_eval, "max_steps" if by_max_steps else "epochs")

    def _result(
        self, losses: list[float], skipped: list[Skipped], last_eval: dict[str, float] | None, stopped_by: str
    ) -> TrainResult:
        return TrainResult(
            out_dir=self.out_dir,
            steps=self.step,
            losses=losses,
            last_checkpoint=self.last_checkpoint,
            best_checkpoint=self.best_checkpoint,
            best_value=self.best_value,
            last_eval=last_eval,
            skipped=skipped,
            stopped_by=stopped_by,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
        )

    def _emit(self, record: dict[str, Any], on_record: Callable[[dict[str, Any]], None] | None) -> None:
        self.metrics.write(record)
        if on_record is not None and self.context.is_main:
            on_record(record)

    def _emit_epoch(self, on_record: Callable[[dict[str, Any]], None] | None) -> None:
        # The published logs' line per epoch: the mean of its step losses (their `train_loss`).
        total, steps = self.epoch_loss
        self._emit(
            {"kind": "epoch", "step": self.step, "epoch": self.epoch, "loss": total / steps, "steps": steps}, on_record
        )

    def _evaluate(
        self, evaluate: Callable[[nn.Module], dict[str, float]], on_record: Callable[[dict[str, Any]], None] | None
    ) -> tuple[dict[str, float], bool]:
        self.model.eval()
        with torch.no_grad(), self._autocast():
            result = evaluate(self.model)
        self.model.train()
        value = result.get(self.task.select) if self.task.select else None
        is_best = value is not None and (self.best_value is None or value > self.best_value)
        if is_best:
            self.best_value = value
        self._emit({"kind": "eval", "step": self.step, "epoch": self.epoch, **result}, on_record)
        return result, is_best

    def _autocast(self):
        enabled = self.autocast is not None
        return torch.autocast(self.context.device.type, dtype=self.autocast or torch.float32, enabled=enabled)

    def _train_step(self, batches) -> tuple[dict[str, Any], list[Skipped]]:
        config, context = self.config, self.context
        self.model.train()
        started = time.perf_counter()
        waited = 0.0
        loss_sum = torch.zeros((), dtype=torch.float64)
        extra_sums: dict[str, float] = {}
        clips = 0
        skipped: list[Skipped] = []
        for micro in range(config.accum_iter):
            before = time.perf_counter()
            batch: TrainBatch = next(batches)
            waited += time.perf_counter() - before
            local = 0 if batch.video is None else batch.video.shape[0]
            counts = all_reduce_sum(torch.tensor([local, len(batch.skipped)], device=context.device), context)
            total, lost = int(counts[0]), int(counts[1])
            if lost:
                skipped += self._report_skipped(batch.skipped)
            if local == 0:
                batch = self.task.empty_batch()
            # Each rank's mean loss weighted by its share of the clips: DDP's gradient average is then the
            # mean over every clip of the micro-batch, however many files were skipped where.
            weight = local * context.world_size / total if total else 0.0
            with gradient_sync(self.model, micro == config.accum_iter - 1), self._autocast():
                loss, extras = self.task.loss(self.model, _to_device(batch, context.device))
            scaled = loss * (weight / config.accum_iter)
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            loss_sum += loss.detach().double().cpu() * local
            for key, value in extras.items():
                extra_sums[key] = extra_sums.get(key, 0.0) + (value if local else 0.0)
            clips += total
        sums = all_reduce_sum(
            torch.tensor([float(loss_sum), *extra_sums.values()], dtype=torch.float64, device=context.device), context
        ).cpu()
        loss_value = float(sums[0]) / clips if clips else float("nan")
        lr = learning_rate(config, self.step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        clip = config.clip_grad if config.clip_grad else float("inf")
        total_norm = nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        grad_norm = float(total_norm.full_tensor() if hasattr(total_norm, "full_tensor") else total_norm)
        if not math.isfinite(loss_value) or (self.scaler is None and not math.isfinite(grad_norm)):
            what = f"loss {loss_value}" if not math.isfinite(loss_value) else f"gradient norm {grad_norm}"
            kept = self.last_checkpoint or "none (no checkpoint was written yet)"
            raise TrainingError(
                f"{what} at step {self.step + 1} (epoch {self.epoch}): stopped without updating or saving; the "
                f"last good checkpoint is {kept}. Lower --lr, check the data, or resume with --resume auto"
            )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        elapsed = time.perf_counter() - started
        record = {
            "kind": "train",
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "loss": loss_value,
            "lr": lr,
            "grad_norm": grad_norm,
            "clips_per_s": clips / elapsed if elapsed > 0 else 0.0,
            "data_wait_s": waited,
            "step_s": elapsed,
        }
        for (key, _), value in zip(extra_sums.items(), sums[1:].tolist()):
            record[key] = value / clips if clips else float("nan")
        return record, skipped

    def _report_skipped(self, mine: list[Skipped]) -> list[Skipped]:
        everyone = [item for items in all_gather_objects(mine, self.context) for item in items]
        # Each was named on the console where it was read (`skipped_for` logs it); the record gives its step.
        for item in everyone:
            self.metrics.write(
                {
                    "kind": "skipped",
                    "step": self.step + 1,
                    "epoch": self.epoch,
                    "path": item.path,
                    "reason": item.reason,
                }
            )
        return everyone


def _to_device(batch: TrainBatch, device: torch.device) -> TrainBatch:
    def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.to(device, non_blocking=True)

    return TrainBatch(move(batch.video), move(batch.label), move(batch.noise), move(batch.index), batch.skipped)


def run_task(
    task: Task,
    config: TrainConfig,
    context: DistributedContext,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train `task` as `config` says on this process's share of the data; see the module doc.

    `on_record` (rank 0 only) gets every metrics record as it is written, e.g. for a progress bar. Raises
    `TrainingError` on a non-finite loss (nothing saved after the last good checkpoint) or data too small
    for one step, ValueError for a bad config or a run folder that already holds a checkpoint (without
    `resume`).
    """
    config.check()
    run = _Run(task, config, context)
    run.start()
    return run.run(on_record)

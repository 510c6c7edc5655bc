"""The step loop every gradient trainer runs in: resumable at any step, data-parallel.

A trainer brings a :class:`Task` (its data order, its batches, its loss); the
loop owns the rest, the same for every method:

* **Position.** Epoch ``e``'s sample order is a function of the seed and ``e``
  (``Task.order``), so a checkpoint needs only (epoch, batch, step) to replay the
  rest of an epoch exactly.
* **Global batch.** A step consumes the next ``train.batch_size`` samples of the
  order, whatever the launch: they are split into ``processes × train.grad_accum``
  micro-batches, each loss is weighted by its share of the readable images of the
  whole batch, and the gradients are summed across processes
  (:func:`.distributed.sum_gradients`). One process and eight do the same
  arithmetic, up to the order of floating-point sums.
* **Precision.** The forward pass runs under accelerate's autocast
  (``train.precision``: bf16, or fp16 with a loss scaler).
* **Checkpoints.** Every ``train.checkpoint_every`` steps, at every epoch end and
  on Ctrl-C, the main process writes the model, optimiser, every process's RNG
  state, the task's own state (a teacher, a queue), the running sums and the
  best epoch so far (:class:`.checkpoint.Checkpoints`: atomic, the last K kept).
  ``train.resume`` continues from the newest and reaches the weights of an
  uninterrupted run.
* **Best epoch.** Validation after every epoch; the state with the best key is
  kept (``train.keep_best``).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from ..detectors import Detector
from .checkpoint import (
    CheckpointError,
    Checkpoints,
    load_optimizer_state,
    load_rng_state,
    optimizer_state,
    prefixed,
    rng_state,
    unprefixed,
)
from .distributed import gather_list, sum_gradients
from .trainer import TrainContext, epoch_order, make_optimizer
from .validation import KeepBest, finish, format_row

Batch = Any  # a task's batch: a tuple whose second item holds the labels, or None when nothing in it was readable


class Task:
    """What a trainer brings to :class:`TrainLoop`. ``order``, ``batches``, ``step`` and
    ``validate`` are required; the other hooks default to nothing."""

    def order(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s sample indices, a function of the recipe and ``epoch`` only."""
        raise NotImplementedError

    def batches(self, chunks: list[list[int]], epoch: int) -> Iterable[Batch]:
        """One batch per chunk of indices, in order (a data loader may prefetch them)."""
        raise NotImplementedError

    def step(self, batch: Batch, weight: float, loop: TrainLoop) -> dict[str, float]:
        """Forward and ``loop.backward(weight × mean loss)``; the loss parts to report (batch means)."""
        raise NotImplementedError

    def validate(self) -> tuple[dict[str, Any], tuple | None]:
        """The epoch row's validation fields, and the key the best epoch is chosen by (None:
        nothing to validate on; the last epoch is kept)."""
        raise NotImplementedError

    def extra_parameters(self) -> list[torch.nn.Parameter]:
        """Training-only parameters the optimiser also steps (a projection head)."""
        return []

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed from, besides the batches per epoch."""
        return {}

    def row_start(self, epoch: int) -> dict[str, Any]:
        return {}

    def begin_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, step: int, total: int) -> dict[str, float]:
        """Called after every optimiser step; returns a status to report (a momentum)."""
        return {}

    def end_epoch(self, epoch: int) -> None:
        pass

    def state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class SequentialOrders:
    """Per-epoch orders drawn one after another from one generator seeded once (a permutation,
    or ``n`` draws by ``weights``); epoch ``e`` is found again by replaying the draws before it,
    which costs a permutation per epoch."""

    def __init__(self, n: int, seed: int, weights: torch.Tensor | None = None) -> None:
        self.n, self.seed, self.weights = n, seed, weights
        self.gen, self.drawn = torch.Generator().manual_seed(seed), 0
        self.last = torch.empty(0, dtype=torch.long)

    def __call__(self, epoch: int) -> torch.Tensor:
        if epoch < self.drawn:  # behind (a resumed run): start again
            self.gen, self.drawn = torch.Generator().manual_seed(self.seed), 0
        while self.drawn < epoch:
            self.last = epoch_order(self.n, self.weights, self.gen)
            self.drawn += 1
        return self.last


class TrainLoop:
    def __init__(self, detector: Detector, task: Task, ctx: TrainContext, n_samples: int) -> None:
        config, self.acc = ctx.config, ctx.accelerator
        self.detector, self.task, self.log, self.progress_factory = detector, task, ctx.log, ctx.progress_factory
        self.epochs, self.batch_size, self.accum, self.every = config.epochs, config.batch_size, config.grad_accum, config.checkpoint_every
        self.resume, self.keep_best, self.seed = config.resume, config.keep_best, config.seed
        opt = make_optimizer(detector, config, task.extra_parameters())
        self.params = [p for group in opt.param_groups for p in group["params"]]
        self.opt = self.acc.prepare_optimizer(opt, device_placement=False)
        self.per_epoch = max(1, math.ceil(n_samples / self.batch_size))
        self.total = self.epochs * self.per_epoch
        self.checkpoints = Checkpoints(ctx.checkpoint_dir, config.keep_checkpoints) if ctx.checkpoint_dir else None
        self.epoch, self.batch, self.step = 1, 0, 0
        self.seen, self.totals = 0, {}  # this process's running sums for the epoch
        self.history: list[dict[str, Any]] = []
        self.best, self.status = KeepBest(), {}

    # ---- what a task calls ----------------------------------------------------------------
    def autocast(self):
        return self.acc.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        self.acc.backward(loss)

    # ---- checkpoints --------------------------------------------------------------------
    def save(self) -> None:
        """Every process takes part (the RNG states and running sums are gathered); the main one writes."""
        rngs = gather_list(self.acc, rng_state())  # the CPU's and, on a GPU, CUDA's
        running = gather_list(self.acc, {"seen": self.seen, "totals": self.totals} if self.batch else {"seen": 0, "totals": {}})
        if self.checkpoints is None or not self.acc.is_main_process:
            return
        tensors = prefixed("model.", self.detector.state_to_save())
        opt_tensors, opt_meta = optimizer_state(self.opt)
        tensors.update(prefixed("optim.", opt_tensors))
        for rank, states in enumerate(rngs):
            tensors.update(prefixed(f"rng.{rank}.", states))
        tensors.update(prefixed("task.", self.task.state()))
        if self.best.state is not None:
            tensors.update(prefixed("best.", self.best.state))
        self.checkpoints.save(self.step, tensors, {
            "epoch": self.epoch, "batch": self.batch, "step": self.step, "epochs": self.epochs,
            "per_epoch": self.per_epoch, "processes": self.acc.num_processes, **self.task.fingerprint(),
            "history": self.history, "optimizer": opt_meta, "status": self.status, "running": running,
            "best_key": list(self.best.key) if self.best.key is not None else None, "best_epoch": self.best.epoch,
        })

    def restore(self) -> bool:
        """Continue from the newest checkpoint; False when there is none."""
        if self.checkpoints is None or self.checkpoints.latest() is None:
            return False
        where = self.checkpoints.latest()
        tensors, meta = self.checkpoints.load()
        expected = {"per_epoch": self.per_epoch, **self.task.fingerprint()}
        found = {k: meta.get(k) for k in expected}
        if found != expected:
            diff = ", ".join(f"{k} {found[k]} (now {v})" for k, v in expected.items() if found[k] != v)
            raise CheckpointError(f"{where}: checkpoint is from a different recipe ({diff})")
        self.detector.load_saved_state(unprefixed("model.", tensors))
        load_optimizer_state(self.opt, unprefixed("optim.", tensors), meta["optimizer"])
        rank = self.acc.process_index
        # another launch size: rank 0's states
        load_rng_state(unprefixed(f"rng.{rank}.", tensors) or unprefixed("rng.0.", tensors))
        self.task.load_state(unprefixed("task.", tensors))
        self.history, self.status = meta["history"], dict(meta.get("status") or {})
        self.epoch, self.batch, self.step = int(meta["epoch"]), int(meta["batch"]), int(meta["step"])
        running = meta["running"]
        mine = running[rank] if meta.get("processes") == self.acc.num_processes else {"seen": 0, "totals": {}}
        self.seen, self.totals = int(mine["seen"]), dict(mine["totals"])
        if meta.get("best_key") is not None:
            self.best.key, self.best.epoch = tuple(meta["best_key"]), int(meta["best_epoch"])
            self.best.state = unprefixed("best.", tensors)
        self.log(f"resumed from {where}: epoch {self.epoch}, batch {self.batch}, step {self.step}")
        return True

    # ---- one epoch ----------------------------------------------------------------------
    def _my_chunks(self, indices: torch.Tensor) -> list[list[int]]:
        """This process's micro-batches of one global batch."""
        world, rank = self.acc.num_processes, self.acc.process_index
        parts = np.array_split(indices.numpy(), world * self.accum)
        return [parts[a * world + rank].tolist() for a in range(self.accum)]

    def _readable(self, batches: list[Batch]) -> int:
        """Readable images in the whole global batch, all processes together."""
        n = torch.tensor([sum(len(b[1]) for b in batches if b is not None)], dtype=torch.float64)
        if self.acc.num_processes > 1:
            torch.distributed.all_reduce(n)
        return int(n.item())

    def _one_step(self, loaded: list[Batch]) -> int:
        self.opt.zero_grad(set_to_none=True)
        self.detector.on_train_progress(self.step / max(1, self.total - 1))
        total, images = self._readable(loaded), 0
        for batch in loaded:
            if batch is None or not len(batch[1]):
                continue
            n = len(batch[1])
            parts = self.task.step(batch, n / total, self)
            images += n
            for k, v in parts.items():
                self.totals[k] = self.totals.get(k, 0.0) + v * n
        sum_gradients(self.acc, self.params)
        if total:
            self.opt.step()
        return images

    def _epoch(self) -> None:
        epoch = self.epoch
        self.task.begin_epoch(epoch)
        self.detector.train()
        if self.batch == 0:
            self.seen, self.totals = 0, {}
        order = self.task.order(epoch)
        steps = [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(self.batch, self.per_epoch)]
        chunks = [c for s in steps for c in self._my_chunks(s)]
        main = self.acc.is_main_process
        share = math.ceil(len(order) / self.acc.num_processes)
        bar = self.progress_factory(share, f"epoch {epoch}/{self.epochs}") if self.progress_factory and main else None
        stream: Iterator[Batch] = iter(self.task.batches(chunks, epoch))
        tenth = max(1, self.per_epoch // 10)
        for _ in steps:
            images = self._one_step([next(stream) for _ in range(self.accum)])
            self.seen += images
            self.batch, self.step = self.batch + 1, self.step + 1
            self.status = {**self.status, **self.task.after_step(self.step, self.total)}
            if bar:
                bar.update(images)
            if self.batch < self.per_epoch:
                if self.per_epoch >= 10 and self.batch % tenth == 0:  # long CPU epochs show progress
                    self.log(f"epoch {epoch}: {self.seen} images, loss {self._mean_loss():.4f}")
                if self.every and self.step % self.every == 0:
                    self.save()
        if bar:
            bar.close()

    def _mean_loss(self) -> float:
        key = next(iter(self.totals), None)
        return self.totals[key] / max(1, self.seen) if key else float("nan")

    def _end_epoch(self) -> None:
        sums = gather_list(self.acc, (self.seen, self.totals))
        seen = sum(s for s, _ in sums)
        totals: dict[str, float] = {}
        for _, t in sums:
            for k, v in t.items():
                totals[k] = totals.get(k, 0.0) + v
        row: dict[str, Any] = {"epoch": self.epoch, **self.task.row_start(self.epoch), "images": seen,
                               **{k: v / max(1, seen) for k, v in totals.items()}, **self.detector.epoch_report(),
                               **self.status}
        self.detector.eval()
        fields, key = self.task.validate()
        row.update(fields)
        if key is not None:  # None: no validation split
            self.best.offer(key, self.detector, self.epoch)
        self.history.append(row)
        if self.epoch in (1, self.epochs) or self.epoch % max(1, self.epochs // 10) == 0:
            self.log(format_row(row))
        self.task.end_epoch(self.epoch)
        self.epoch, self.batch = self.epoch + 1, 0
        self.save()

    def run(self) -> dict[str, Any]:
        if not (self.resume and self.restore()):
            torch.manual_seed(self.seed + self.acc.process_index)
        try:
            while self.epoch <= self.epochs:
                self._epoch()
                self._end_epoch()
        except KeyboardInterrupt:
            if self.acc.num_processes > 1:  # the others may be anywhere: no collective save now
                raise
            self.save()
            self.log(f"interrupted: checkpoint at epoch {self.epoch}, batch {self.batch} in "
                     f"{self.checkpoints.root if self.checkpoints else '(no run folder)'}; continue with `aigi train ... --resume`")
            raise
        return finish(self.best, self.detector, self.epochs, self.keep_best, self.log, self.history)

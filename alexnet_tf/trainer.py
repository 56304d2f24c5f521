"""The training loop: tf.function train and eval steps, schedule, checkpoints, TensorBoard and the progress bar.

One call, `train(config, run_dir)`, does a whole run:

    prepare the data (alexnet_tf.data) -> build the model on the towers' devices -> restore the latest checkpoint of
    run_dir if there is one -> for each epoch: train steps over the augmented batches, checkpoint every N steps,
    evaluate the centre crop, let the schedule see the validation error, checkpoint -> ten-crop evaluation at the end.

The run directory's files (config, statistics, vocabulary, checkpoints, TensorBoard events, summary) are laid out
and written by `alexnet_tf.rundir`.

A checkpoint holds `model`, `optimizer` (its velocities and learning rate), `step` (training steps done), `epoch`
(epochs completed) and `schedule` (the plateau rule's best error, wait and drops). Data order does not need saving:
`train_dataset(seed, epoch)` gives the same batches for the same (seed, epoch), and a resumed run skips the batches
of the epoch that were already used.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf import data as data_lib
from alexnet_tf.data import augment
from alexnet_tf.config import Config, ConfigError
from alexnet_tf.devices import (UNPINNED, make_strategy, seed_everything, set_precision, tower_placement)
from alexnet_tf.figures import conv1_grids
from alexnet_tf.metrics import RunningSums, batch_sums
from alexnet_tf.model import build_alexnet
from alexnet_tf.optim import base_optimizer, paper_sgd
from alexnet_tf.progress import progress_bar, write
from alexnet_tf.rundir import RunDir
from alexnet_tf.schedule import Schedule, make_schedule
from alexnet_tf.errors import EXIT_PREEMPTED as PREEMPTED_EXIT_CODE  # noqa: F401 (kept for callers)
from alexnet_tf.errors import NonFiniteError, Preempted, RunDirError  # noqa: F401 (raised here; importable from here)

# TensorBoard tags, one place so that tests and the README name the same things.
SCALARS = ("train/loss", "train/top1_error", "train/top5_error", "train/learning_rate", "train/images_per_second",
           "train/step_time_ms", "val/loss", "val/top1_error", "val/top5_error")
TEN_CROP_SCALARS = ("val_ten_crop/loss", "val_ten_crop/top1_error", "val_ten_crop/top5_error")
IMAGES = ("train/augmented_images", "conv1/tower_a", "conv1/tower_b")


class _NonFinite(Exception):
    """Internal: a non-finite loss or weight was seen at `step` (before anything was saved)."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


class _StopSignals:
    """While active, SIGTERM and SIGINT only set `signum`; the loop finishes its step, saves and stops.

    A second signal of the same kind while stopping is not caught again (a second Ctrl-C interrupts at once).
    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    """What a run ended with."""

    run_dir: str
    step: int
    epoch: int
    checkpoint: str | None
    val: dict[str, float]
    val_ten_crop: dict[str, float] | None
    history: list[dict[str, Any]]


def _check_disk_space(run_dir: str, model: keras.Model, keep: int) -> None:
    """Refuses to start when the disk cannot hold the checkpoints (weights + velocities, `keep` + 1 of them)."""
    per_checkpoint = 2 * sum(int(np.prod(v.shape)) * 4 for v in model.weights)
    need = per_checkpoint * (keep + 1)
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise RunDirError(f"not enough free disk space for checkpoints in {run_dir!r}: {keep} kept + 1 being "
                          f"written need about {need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free; free some "
                          f"space, lower train.keep_checkpoints or choose another --run-dir")


def _split_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Data-parallel replicas split every global batch between them (each worker reads all the data and keeps its
    part), so a multi-worker step sees exactly the examples of the single-process step."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes the run directory: the only one, or the chief (worker 0) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _fmt(metrics: dict[str, float], prefix: str) -> str:
    return (f"{prefix} loss {metrics.get('loss', float('nan')):.3f} top-1 {100 * metrics['top1_error']:.1f}% "
            f"top-5 {100 * metrics['top5_error']:.1f}%")


class Trainer:
    """A training run in a run directory; `fit()` runs it to the end (or to `train.max_steps`).

    Args:
        config: The resolved config.
        run_dir: The run directory (created if needed).
        resume: True: continue from the latest checkpoint (an error if there is none); False: refuse to run in a
            directory that holds one; None (default): resume when there is one.
        progress: Show tqdm progress bars on the terminal.
        verbose: Print the one-line summary per epoch (and the resume and ten-crop lines).
    """

    def __init__(self, config: Config, run_dir: str, resume: bool | None = None, progress: bool = True,
                 verbose: bool = True) -> None:
        self.config, self.progress, self.verbose = config, progress, verbose
        self.directory = RunDir(run_dir)
        self.run_dir = self.directory.path
        found = self.directory.has_checkpoint()
        if resume is True and not found:
            raise RunDirError(f"--resume: run directory {self.run_dir!r} holds no checkpoint to resume from")
        if resume is False and found:
            raise RunDirError(f"run directory {self.run_dir!r} already holds a checkpoint; resume it (--resume) or "
                              f"choose another --run-dir")
        self.directory.check_fits(config)
        self.resuming = found
        train, runtime = config.train, config.runtime

        self.strategy = make_strategy(runtime.distribute)  # first: multi-worker must start before other TF ops
        self.is_chief = _is_chief(self.strategy)
        seed_everything(runtime.seed, runtime.deterministic)
        set_precision(runtime.precision)
        self.prepared = data_lib.prepare_data(config.data, progress=progress)
        if len(self.prepared.vocabulary) != config.model.num_classes:
            raise ConfigError(f"config key 'model.num_classes': got {config.model.num_classes}, but the data "
                              f"({config.data.source!r}) has {len(self.prepared.vocabulary)} classes; set "
                              f"--set model.num_classes={len(self.prepared.vocabulary)}")
        self.global_batch = train.batch_size
        self.steps_per_epoch = self.prepared.num_train // self.global_batch
        if self.steps_per_epoch < 1:
            raise ConfigError(f"config key 'train.batch_size': got {train.batch_size}, more than the "
                              f"{self.prepared.num_train} training images; lower it")

        os.makedirs(self.run_dir, exist_ok=True)
        if self.is_chief:  # in multi-worker training only the chief writes the run directory's files
            self.directory.write_files(config, self.prepared.stats_path, self.prepared.vocab_path)

        placement = UNPINNED if (runtime.distribute != "none" or not runtime.pin_towers) else \
            tower_placement(runtime.tower_devices, runtime.pin_towers)
        self.placement = placement
        with self.strategy.scope():
            self.model = build_alexnet(**dataclasses.asdict(config.model), input_size=config.data.crop_size,
                                       placement=placement)
            self.optimizer = paper_sgd(train.learning_rate, train.momentum, train.weight_decay, train.decay_biases,
                                       runtime.precision)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.schedule: Schedule = make_schedule(train.schedule, train.learning_rate, train.lr_divisor,
                                                train.plateau_patience, train.max_lr_drops, train.step_epochs)
        # Dropout's random state (Keras seed generators) is not part of the model's checkpoint by default; saving it
        # makes a resumed run draw the same dropout masks as a run that never stopped.
        self.dropout_rng = tf.Module(name="dropout_rng")
        self.dropout_rng.states = [v.value for v in self.model.variables if "seed_generator_state" in v.path]
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                              epoch=self.epoch, schedule=self.schedule, dropout_rng=self.dropout_rng)
        # Every worker must take part in a save; the others write throwaway copies into their own folder.
        checkpoint_dir = self.directory.checkpoint_dir if self.is_chief else \
            self.directory.worker_checkpoint_dir(self.strategy.cluster_resolver.task_id)
        self.manager = tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep=train.keep_checkpoints)
        _check_disk_space(self.run_dir, self.model, train.keep_checkpoints)
        if found:  # every worker restores the chief's latest checkpoint
            latest = self.directory.latest_checkpoint()
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        self.writer = tf.summary.create_file_writer(self.directory.tensorboard_dir) if self.is_chief \
            else tf.summary.create_noop_writer()
        self._train_step = self._make_train_step()
        self._eval_steps: dict[bool, Callable] = {}
        self.history: list[dict[str, Any]] = []
        self._injected: set[int] = set()  # nan_inject_steps already poisoned (each fires once per process)

    # -- steps ---------------------------------------------------------------------------------------------------

    def _make_train_step(self) -> Callable:
        model, optimizer, stats = self.model, self.optimizer, self.prepared.stats
        data_cfg, global_batch = self.config.data, self.global_batch

        check_grads = self.config.runtime.precision != "mixed_float16"  # loss scaling skips overflowing steps

        def replica_step(batch: dict[str, tf.Tensor], labels: tf.Tensor, poison: tf.Tensor) -> dict[str, tf.Tensor]:
            images = augment.network_input(batch, stats, mean=data_cfg.mean, pca_scale=data_cfg.pca_scale)
            logits = tf.cast(model(images, training=True), tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits) + poison
            loss = tf.reduce_sum(losses) / global_batch  # the global batch: replicas' gradients are summed
            # tf.gradients (graph mode) colocates each gradient op with its forward op, so tower B's backward pass
            # runs on tower B's device; a GradientTape would leave the gradient ops unplaced (all on the first
            # device), which is not the paper's model parallelism.
            grads = tf.gradients(optimizer.scale_loss(loss), [v.value for v in model.trainable_variables])
            finite = tf.math.is_finite(loss)
            if check_grads:
                finite = tf.logical_and(finite, tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return {**batch_sums(logits, labels, losses), "nonfinite": 1.0 - tf.cast(finite, tf.float32)}

        strategy = self.strategy

        @tf.function(jit_compile=self.config.runtime.jit_compile)
        def step_fn(batch: dict[str, tf.Tensor], labels: tf.Tensor, poison: tf.Tensor) -> dict[str, tf.Tensor]:
            sums = strategy.run(replica_step, args=(batch, labels, poison))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

        return step_fn

    def _eval_step(self, ten_crop: bool) -> Callable:
        if ten_crop in self._eval_steps:
            return self._eval_steps[ten_crop]
        model, strategy = self.model, self.strategy

        def replica_step(images: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
            if ten_crop:  # [B, 10, S, S, 3]: the paper averages the ten softmax outputs
                shape = tf.shape(images)
                flat = tf.reshape(images, tf.concat([[-1], shape[2:]], axis=0))
                probs = tf.nn.softmax(tf.cast(model(flat, training=False), tf.float32))
                probs = tf.reduce_mean(tf.reshape(probs, [shape[0], shape[1], -1]), axis=1)
                true_p = tf.gather(probs, tf.cast(labels, tf.int32), axis=1, batch_dims=1)
                losses = -tf.math.log(tf.maximum(true_p, 1e-12))
                return batch_sums(probs, labels, losses)
            logits = tf.cast(model(images, training=False), tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
            return batch_sums(logits, labels, losses)

        @tf.function(reduce_retracing=True)  # the last batch is smaller: one more trace, not a retrace per size
        def step_fn(images: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
            sums = strategy.run(replica_step, args=(images, labels))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

        self._eval_steps[ten_crop] = step_fn
        return step_fn

    # -- evaluation ----------------------------------------------------------------------------------------------

    def evaluate(self, ten_crop: bool = False, split: str = "val") -> dict[str, float]:
        """Loss and top-1/top-5 error over a whole split: the centre crop, or the average of ten crops."""
        batch = max(1, self.global_batch // 10) if ten_crop else self.global_batch
        dataset = data_lib.eval_dataset(self.prepared, self.config.data, batch, split=split, ten_crop=ten_crop)
        dataset = self.strategy.experimental_distribute_dataset(_split_batches(dataset))
        step = self._eval_step(ten_crop)
        running = RunningSums()
        total = self.prepared.num_val if split == "val" else self.prepared.num_train
        bar = progress_bar(math.ceil(total / batch), f"eval {'ten-crop' if ten_crop else 'centre'}", self.progress,
                           unit="batch", leave=False)
        pending = []
        for images, labels in dataset:
            pending.append(step(images, labels))
            bar.update(1)
        bar.close()
        for sums in pending:
            running.add(sums)
        return running.result()

    # -- logging -------------------------------------------------------------------------------------------------

    def _log_augmented_images(self, batch: dict[str, tf.Tensor], step: int) -> None:
        """The first few training images as the network sees them, before mean subtraction (crop, flip, lighting)."""
        n = min(self.config.train.tensorboard_images, int(batch["image"].shape[0]))
        if n == 0:
            return
        few = {k: v[:n] for k, v in batch.items()}
        stats, data_cfg = self.prepared.stats, self.config.data
        unlit = {**few, "alpha": tf.zeros_like(few["alpha"])}
        lighting = (augment.network_input(few, stats, mean=data_cfg.mean, pca_scale=data_cfg.pca_scale)
                    - augment.network_input(unlit, stats, mean=data_cfg.mean, pca_scale=data_cfg.pca_scale))
        shown = tf.clip_by_value(tf.cast(few["image"], tf.float32) + lighting, 0, 255) / 255
        with self.writer.as_default(step=step):
            tf.summary.image("train/augmented_images", shown, max_outputs=n)

    def _log_epoch_images(self, step: int) -> None:
        grids = conv1_grids(self.model)
        with self.writer.as_default(step=step):
            for t in ("a", "b"):
                tf.summary.image(f"conv1/tower_{t}", grids[t][None].astype(np.float32) / 255)
            if self.config.train.histograms:
                for v in self.model.trainable_variables:
                    tf.summary.histogram(f"weights/{v.path}", v)

    def _log_scalars(self, values: dict[str, float], step: int) -> None:
        with self.writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)
        self.writer.flush()

    # -- the loop ------------------------------------------------------------------------------------------------

    def _save(self) -> str:
        return self.manager.save(checkpoint_number=int(self.step.numpy()))

    def _set_learning_rate(self, rate: float) -> None:
        base_optimizer(self.optimizer).learning_rate.assign(rate)

    def fit(self) -> TrainResult:
        """Trains until `train.epochs` epochs (or `train.max_steps` steps) are done; returns the final figures.

        Raises:
            Preempted: after SIGTERM or SIGINT; the current step was finished and saved first.
            NonFiniteError: when the loss or the weights stayed non-finite through `train.nan_max_retries` retries.
        """
        train = self.config.train
        if self.resuming and self.verbose:
            write(f"resuming {self.run_dir} at step {int(self.step.numpy())} "
                       f"(epoch {int(self.epoch.numpy()) + 1})")
        if not self.resuming:
            self._save()  # step 0: there is always a good checkpoint to go back to
        retries = 0
        with _StopSignals() as stop:
            while True:
                try:
                    val, val_step = self._train_epochs(stop)
                    break
                except _NonFinite as e:
                    retries += 1
                    if retries > train.nan_max_retries:
                        raise NonFiniteError(
                            f"non-finite loss or weights at step {e.step}, and {train.nan_max_retries} retries from "
                            f"the last good checkpoint with the learning rate lowered did not help; the checkpoints "
                            f"in {self.run_dir} hold only finite weights; lower train.learning_rate (now "
                            f"{self.schedule.learning_rate:.3g}) and resume") from None
                    self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
                    self.schedule.scale(train.nan_lr_factor)
                    if self.verbose:
                        write(f"non-finite loss or weights at step {e.step}: back to step "
                                   f"{int(self.step.numpy())} with the learning rate x{train.nan_lr_factor} "
                                   f"(retry {retries}/{train.nan_max_retries})")
        step = int(self.step.numpy())
        if val_step != step:  # stopped inside an epoch, or resumed a finished run: evaluate the current weights
            val = self.evaluate(ten_crop=False)
            self._log_scalars({f"val/{k}": v for k, v in val.items()}, step)
        ten = None
        if train.ten_crop_at_end:
            ten = self.evaluate(ten_crop=True)
            self._log_scalars({f"val_ten_crop/{k}": v for k, v in ten.items()}, step)
            if self.verbose:
                write(_fmt(ten, "final val (ten crops):"))
        result = TrainResult(self.run_dir, step, int(self.epoch.numpy()), self.manager.latest_checkpoint, val, ten,
                             self.history)
        if self.is_chief:
            self.directory.write_summary({"step": step, "epoch": result.epoch, "checkpoint": result.checkpoint,
                                          "val": val, "val_ten_crop": ten,
                                          "learning_rate": self.schedule.learning_rate})
        self.writer.flush()
        return result

    def _flush(self, pending: list[tuple[int, dict[str, tf.Tensor]]], into: RunningSums) -> None:
        """Adds the pending steps' sums to `into`; raises _NonFinite naming the first step whose loss was not finite."""
        for step, sums in pending:
            if float(sums["nonfinite"]) > 0 or not math.isfinite(float(sums["loss"])):
                raise _NonFinite(step)
            into.add({k: v for k, v in sums.items() if k != "nonfinite"})
        pending.clear()

    def _check_finite_weights(self) -> None:
        """Raises _NonFinite when any weight is NaN or infinite."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in self.model.trainable_variables])
        if not bool(finite):
            raise _NonFinite(int(self.step.numpy()))

    def _save_checked(self) -> None:
        """Saves a checkpoint, unless a weight is not finite (then raises _NonFinite: nothing bad is written)."""
        self._check_finite_weights()
        self._save()

    def _train_epochs(self, stop: "_StopSignals") -> tuple[dict[str, float], int]:
        """The epochs from the current step on; returns the last validation figures and the step they belong to."""
        train, data_cfg = self.config.train, self.config.data
        max_steps = train.max_steps or math.inf
        step = int(self.step.numpy())
        last_saved, val, val_step = step, {}, -1
        while int(self.epoch.numpy()) < train.epochs and step < max_steps:
            epoch = int(self.epoch.numpy()) + 1
            rate = self.schedule.on_epoch_start(epoch)
            self._set_learning_rate(rate)
            done = step - (epoch - 1) * self.steps_per_epoch  # steps of this epoch already taken before a resume
            dataset = data_lib.train_dataset(self.prepared, data_cfg, self.global_batch, self.config.runtime.seed,
                                             epoch)
            if done > 0:
                dataset = dataset.skip(done)
            dataset = self.strategy.experimental_distribute_dataset(_split_batches(dataset))
            bar = progress_bar(self.steps_per_epoch, f"epoch {epoch}/{train.epochs}", self.progress, unit="step",
                               initial=done)
            epoch_sums, interval = RunningSums(), RunningSums()
            pending: list[tuple[int, dict[str, tf.Tensor]]] = []
            epoch_start = interval_start = time.perf_counter()
            interval_steps = 0
            first = done == 0 and self.config.runtime.distribute == "none"
            try:
                for batch, labels in dataset:
                    if step >= max_steps:
                        break
                    if first:
                        self._log_augmented_images(batch, step)
                        first = False
                    poison = math.nan if (step + 1 in train.nan_inject_steps and step + 1 not in self._injected) \
                        else 0.0
                    if poison:
                        self._injected.add(step + 1)
                    pending.append((step + 1, self._train_step(batch, labels, tf.constant(poison, tf.float32))))
                    step += 1
                    interval_steps += 1
                    self.step.assign(step)
                    bar.update(1)
                    if step % train.log_every_steps == 0 or step == max_steps or stop.signum:
                        self._flush(pending, interval)
                        epoch_sums.add(interval.totals)
                        now = time.perf_counter()
                        seconds = now - interval_start
                        metrics = interval.result()
                        rate_img = interval.count / seconds if seconds > 0 else float("nan")
                        self._log_scalars({"train/loss": metrics["loss"], "train/top1_error": metrics["top1_error"],
                                           "train/top5_error": metrics["top5_error"], "train/learning_rate": rate,
                                           "train/images_per_second": rate_img,
                                           "train/step_time_ms": 1000 * seconds / interval_steps}, step)
                        bar.set_postfix(loss=f"{metrics['loss']:.3f}", img_s=f"{rate_img:.0f}", lr=f"{rate:.2g}")
                        interval.reset()
                        interval_start, interval_steps = now, 0
                    if step % train.checkpoint_every_steps == 0 or stop.signum:
                        self._flush(pending, interval)
                        self._save_checked()
                        last_saved = step
                    if stop.signum:
                        raise Preempted(step, stop.signum, self.manager.latest_checkpoint)
                self._flush(pending, interval)
                epoch_sums.add(interval.totals)
            finally:
                bar.close()
            if step >= max_steps and step - (epoch - 1) * self.steps_per_epoch < self.steps_per_epoch:
                break  # stopped inside the epoch
            self._end_epoch(epoch, step, epoch_sums, time.perf_counter() - epoch_start)
            last_saved = step
            if "val" in self.history[-1]:
                val, val_step = self.history[-1]["val"], step
        if last_saved != step:
            self._save_checked()
        return val, val_step

    def _end_epoch(self, epoch: int, step: int, epoch_sums: RunningSums, seconds: float) -> None:
        train = self.config.train
        self._check_finite_weights()  # before the schedule sees an evaluation of broken weights
        record: dict[str, Any] = {"epoch": epoch, "step": step, "train": epoch_sums.result(),
                                  "learning_rate": self.schedule.learning_rate,
                                  "images_per_second": epoch_sums.count / seconds if seconds > 0 else float("nan")}
        if epoch % train.eval_every_epochs == 0 or epoch == train.epochs:
            val = self.evaluate(ten_crop=False)
            record["val"] = val
            self._log_scalars({f"val/{k}": v for k, v in val.items()}, step)
            if self.schedule.update(val["top1_error"]):
                record["lr_divided_to"] = self.schedule.learning_rate
        self._log_epoch_images(step)
        self.epoch.assign(epoch)
        self._save_checked()
        self.history.append(record)
        if self.verbose:
            line = f"epoch {epoch}/{train.epochs} " + _fmt(record["train"], "train")
            if "val" in record:
                line += " | " + _fmt(record["val"], "val")
            line += f" | lr {record['learning_rate']:.3g} | {record['images_per_second']:.0f} img/s, {seconds:.0f} s"
            if "lr_divided_to" in record:
                line += f" | val error stalled: lr -> {record['lr_divided_to']:.3g}"
            write(line)


def train(config: Config, run_dir: str, resume: bool | None = None, progress: bool = True,
          verbose: bool = True) -> TrainResult:
    """Runs (or resumes) a training run in `run_dir`; see `Trainer`."""
    return Trainer(config, run_dir, resume=resume, progress=progress, verbose=verbose).fit()

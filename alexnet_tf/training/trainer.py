"""The training loop: `Trainer.fit()` runs `train_one_epoch()` and `end_epoch()` (evaluation, schedule, checkpoint)
until the run is done, going back to the last good checkpoint when the loss turns NaN.

One call, `train(config, run_dir)`, does a whole run:

    resolve the config once (alexnet_tf.training.resolve: the fine-tuning source's network, the prepared data, the
    class count) -> build the state (alexnet_tf.training.state) -> restore the newest readable
    checkpoint of run_dir if there is one (else, fine-tuning, the source's weights: alexnet_tf.training.finetune)
    -> for each epoch: train steps over the augmented batches, checkpoint every N steps, evaluate the centre crop,
    let the schedule see the validation error, checkpoint -> ten-crop evaluation.

The run's checkpoints (the lock, the resume check, when to save, how many to keep, recovery, disk space) are asked of
its `alexnet_tf.runs.checkpointer.Checkpointer`; the run directory's files are `alexnet_tf.runs.rundir`'s;
TensorBoard is `alexnet_tf.training.summaries`'s. A resumed run skips the batches of the epoch that were already used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import tensorflow as tf

from alexnet_tf import data as data_lib
from alexnet_tf.config import Config, load_config
from alexnet_tf.core.files import FOLDER, output_errors
from alexnet_tf.core.progress import progress_bar, write
from alexnet_tf.core.shell import alexnet_command
from alexnet_tf.data.prepared import READ_ERRORS, read_error
from alexnet_tf.errors import InputError, NonFiniteError, Preempted, RunDirError, SummaryWriteError
from alexnet_tf.models.devices import seed_everything, set_precision
from alexnet_tf.runs.checkpointer import Checkpointer
from alexnet_tf.runs.latest import new_run_dir
from alexnet_tf.runs.rundir import RunDir
from alexnet_tf.training.metrics import RunningSums
from alexnet_tf.training.resolve import ResolvedRun, resolve_run
from alexnet_tf.training.schedule import rebase_learning_rate
from alexnet_tf.training.state import TrainState, build_state, is_chief
from alexnet_tf.training.steps import make_eval_step, make_train_step
from alexnet_tf.training.summaries import Summaries


class _StopSignals:
    """While active, SIGTERM, SIGINT and SIGHUP (a closed terminal or ssh session) only set `signum`; the loop
    finishes its step, saves and stops.

    A second signal of the same kind while stopping is not caught again (a second Ctrl-C interrupts at once; the
    command runner reports it without a traceback). Outside the main thread (where Python cannot install handlers)
    it does nothing.
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
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    """What a run ended with: its resolved config, figures and history; `already_complete` when it had nothing left
    to train, `export` the SavedModel written at the end (`alexnet_tf.api.train`, when train.export_at_end says so)."""

    run_dir: str
    config: Config
    step: int
    epoch: int
    checkpoint: str | None
    val: dict[str, float]
    val_ten_crop: dict[str, float] | None
    history: list[dict[str, Any]]
    already_complete: bool = False
    chief: bool = True  # False on the other workers of a multi-worker run, which write nothing into the run
    export: str | None = None


@dataclass
class EpochOutcome:
    """How `train_one_epoch` ended: `bad_step` when a loss or weight was not finite (nothing bad was saved),
    `finished` when every step of the epoch is done, else stopped by a signal or train.max_steps."""

    step: int
    sums: RunningSums = field(default_factory=RunningSums)
    seconds: float = 0.0
    bad_step: int | None = None
    finished: bool = False


def _split_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Data-parallel replicas split every global batch between them (each worker reads all the data and keeps its
    part), so a multi-worker step sees exactly the examples of the single-process step."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class _TrainingInput:
    """One iterator over the training batches of up to EPOCHS_PER_ITERATOR epochs (`data.run_batches`), kept from
    epoch to epoch: the next epoch's input is prepared while the trainer evaluates, and no iterator is torn down and
    built at each epoch's end. It is rebuilt where the run's step is not the one it stands at (after going back to a
    checkpoint) and when its epochs are used up; the batches are the same either way."""

    EPOCHS_PER_ITERATOR = 10

    def __init__(self, make: Callable[[range, int], Any], steps_per_epoch: int, last_epoch: int) -> None:
        self._make, self._steps_per_epoch, self._last_epoch = make, steps_per_epoch, last_epoch
        self._iterator: Iterator[Any] | None = None
        self._step = self._end = -1  # the step its next batch is for; the step after its last batch

    def batches(self, step: int) -> Iterator[Any]:
        """The iterator whose next batch is that of step `step` + 1 (1-based steps: `step` steps taken)."""
        if self._iterator is None or step != self._step or step >= self._end:
            self.close()
            epoch = step // self._steps_per_epoch + 1
            epochs = range(epoch, min(self._last_epoch, epoch + self.EPOCHS_PER_ITERATOR - 1) + 1)
            self._iterator = iter(self._make(epochs, step - (epoch - 1) * self._steps_per_epoch))
            self._step, self._end = step, epochs[-1] * self._steps_per_epoch
        return self._iterator

    def took(self) -> None:
        """One batch of the iterator was used."""
        self._step += 1

    def close(self) -> None:
        self._iterator = None


@contextlib.contextmanager
def _reading(prepared: data_lib.PreparedData) -> Iterator[None]:
    """Turns a prepared shard that fails to read mid-epoch (tf.data names no file) into a DataError naming the shard
    and the command that repairs it."""
    try:
        yield
    except READ_ERRORS as e:
        raise read_error(prepared, e) from e


def _fmt(metrics: dict[str, float], prefix: str) -> str:
    if not metrics:  # resumed at the very end of the epoch: no step of it ran in this process
        return f"{prefix} (resumed at the epoch's end)"
    return (f"{prefix} loss {metrics.get('loss', float('nan')):.3f} top-1 err {100 * metrics['top1_error']:.1f}% "
            f"top-5 err {100 * metrics['top5_error']:.1f}%")


class Trainer:
    """A training run in a run directory, which it holds locked; `fit()` runs it to the end (or `train.max_steps`).

    Args:
        run: The resolved run (`alexnet_tf.training.resolve.resolve_run`): config, prepared data, strategy and
            fine-tuning source, all decided before the trainer is built.
        run_dir: The run directory (created if needed).
        resume: True: continue from the latest checkpoint (an error if there is none); False: refuse to run in a
            directory that holds one; None (default): resume when there is one.
        progress: Show tqdm progress bars on the terminal.
        verbose: Print the one-line summary per epoch (and the resume and ten-crop lines).
        loss_poison: A test seam: step number (1-based) -> a value added to that step's loss (NaN to poison it).
    """

    def __init__(self, run: ResolvedRun, run_dir: str, resume: bool | None = None, progress: bool = True,
                 verbose: bool = True, loss_poison: Callable[[int], float] | None = None) -> None:
        self.config, self.prepared, self.progress, self.verbose = run.config, run.prepared, progress, verbose
        self.loss_poison = loss_poison or (lambda step: 0.0)
        self.directory = RunDir(run_dir)
        self.run_dir, config, strategy = self.directory.path, run.config, run.strategy
        self.global_batch = config.train.batch_size
        self.steps_per_epoch = self.prepared.num_train // self.global_batch
        # Built once per run: resolve_run opened it (lock, resume check) when it resolved for this directory.
        self.checkpoints = run.checkpointer
        if self.checkpoints is None or self.checkpoints.directory.path != self.run_dir:
            if self.checkpoints is not None:
                self.checkpoints.close()  # opened for another directory
            self.checkpoints = Checkpointer(self.run_dir, None if is_chief(strategy) else
                                            strategy.cluster_resolver.task_id)
        try:
            self.resumed = self.checkpoints.open(config, ("model.num_classes",) if run.init else ())
            latest = self.checkpoints.recover(resume)
            seed_everything(config.runtime.seed, config.runtime.deterministic)
            set_precision(config.runtime.precision)
            self.state = self._build_state(run, latest)
            self.resuming = latest is not None
            self._files = (self.prepared.stats if run.init else self.prepared.stats_path, self.prepared.vocab_path)
            self.summaries = Summaries(None)  # a run's event file is made when it has steps left
            self._train_step = make_train_step(self.state, self.prepared.stats, config.data, self.global_batch,
                                               config.runtime.jit_compile,
                                               config.runtime.precision != "mixed_float16")
            self._eval_steps = {ten_crop: make_eval_step(self.state, ten_crop) for ten_crop in (False, True)}
            last_epoch = min(config.train.epochs, math.ceil(config.train.max_steps / self.steps_per_epoch)
                             if config.train.max_steps else config.train.epochs)
            self._input = _TrainingInput(self._training_batches, self.steps_per_epoch, max(last_epoch, 1))
            self.history: list[dict[str, Any]] = []
            self._rebased = False
            if not self._complete():
                self._prepare_to_train()
        except BaseException:
            self.close()
            raise

    def _build_state(self, run: ResolvedRun, latest: str | None) -> TrainState:
        """The model, optimiser and schedule: restored from `latest`, else (fine-tuning) from the source's weights
        with a fresh optimiser at step 0, else the paper's init."""
        config, init = run.config, run.init
        state = build_state(run.strategy, config.model, config.data.crop_size, config.train, config.runtime,
                            init.new_layers if init else ())
        self.checkpoints.attach(state.checkpoint, config.train, state.bytes_per_checkpoint)
        if latest:  # every worker restores the chief's checkpoint
            state.restore(latest)
        elif init:
            restored = init.restore_into(state.model)
            if self.verbose:
                write(init.describe(restored, config))
        return state

    def close(self) -> None:
        """Lets go of the run directory and the training input (fit() does so when it ends)."""
        if getattr(self, "_input", None) is not None:
            self._input.close()
        self.checkpoints.close()

    def _prepare_to_train(self) -> None:
        """For a run with steps left: records its files (the config; the statistics and classes only for a new run),
        opens its TensorBoard events, and applies and reports the honoured changes of a resume. A finished run
        skips this: a rerun of it writes nothing."""
        if self.checkpoints.chief:  # a full disk or an unwritable folder exits 2 naming it
            with output_errors(self.run_dir, FOLDER, "--run-dir"):
                self.directory.write_files(self.config, *self._files)
            self.summaries = Summaries(self.directory.tensorboard_dir)
        if not self.resuming:
            return
        notes = self.resumed.changes[:]
        schedule, previous = self.state.schedule, self.resumed.previous
        if previous is not None and rebase_learning_rate(schedule, previous.train, self.config.train):
            rate = schedule.on_epoch_start(int(self.state.epoch.numpy()) + 1)
            notes.append(f"the learning rate is {rate:.3g} from step {int(self.state.step.numpy()) + 1} on")
            self._rebased = True
        if notes and self.verbose:
            write(f"resuming {self.run_dir} with changed settings (recorded in its config): {'; '.join(notes)}")

    # -- the loop ----------------------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Trains until `train.epochs` epochs (or `train.max_steps` steps) are done; returns the final figures.

        Raises:
            Preempted: after SIGTERM, SIGINT or SIGHUP; the current step was finished and saved first.
            NonFiniteError: when the loss or the weights stayed non-finite through `train.nan_max_retries` retries.
        """
        train, state = self.config.train, self.state
        try:
            if self._complete():
                return self._already_complete()
            if self.resuming and self.verbose:
                write(f"resuming {self.run_dir} at step {int(state.step.numpy())} "
                      f"(epoch {int(state.epoch.numpy()) + 1})")
            if not self.resuming or self._rebased:
                self._save()  # step 0 (always a good checkpoint to go back to), or the rebased schedule (for a NaN
                # retry and the next resume)
            retries = 0
            with _StopSignals() as stop:
                while not self._complete():
                    epoch = int(state.epoch.numpy()) + 1
                    outcome = self.train_one_epoch(epoch, stop)
                    if outcome.finished and outcome.bad_step is None:
                        outcome.bad_step = self.end_epoch(epoch, outcome)
                    if outcome.bad_step is not None:  # back to the last good checkpoint, with a lower rate
                        retries += 1
                        if retries > train.nan_max_retries:
                            raise NonFiniteError(
                                f"non-finite loss or weights at step {outcome.bad_step}, and {train.nan_max_retries} "
                                f"retries from the last good checkpoint with the learning rate lowered did not help; "
                                f"the checkpoints in {self.run_dir} hold only finite weights; lower "
                                f"train.learning_rate (now {state.schedule.learning_rate:.3g}) and resume")
                        state.restore(self.checkpoints.latest)
                        state.schedule.scale(train.nan_lr_factor)
                        if self.verbose:
                            write(f"non-finite loss or weights at step {outcome.bad_step}: back to step "
                                  f"{int(state.step.numpy())} with the learning rate x{train.nan_lr_factor} "
                                  f"(retry {retries}/{train.nan_max_retries})")
                        continue
                    if stop.signum:
                        raise Preempted(outcome.step, stop.signum, self.checkpoints.latest)
                    if not outcome.finished:
                        break  # train.max_steps, inside the epoch
            return self._final_evaluation()
        except SummaryWriteError as e:
            raise self._stopped_by_summaries(e) from None
        finally:
            self.summaries.flush()
            self.close()

    def _stopped_by_summaries(self, error: SummaryWriteError) -> SummaryWriteError:
        """The error to stop with when TensorBoard's events cannot be written: a checkpoint is saved first if the
        disk still takes one, so that at most the steps since the last log are lost."""
        try:
            saved = self._save_checked() is None and self.checkpoints.latest
        except RunDirError:
            saved = None
        kept = f"saved {saved} first" if saved else \
            f"the latest good checkpoint is {self.checkpoints.latest_on_disk()}"
        return SummaryWriteError(f"{error}; {kept}; free some space (or make the folder writable) and resume with: "
                                 f"{alexnet_command('train', '--run-dir', self.run_dir)}")

    def _complete(self) -> bool:
        train, state = self.config.train, self.state
        return int(state.epoch.numpy()) >= train.epochs or 0 < train.max_steps <= int(state.step.numpy())

    def train_one_epoch(self, epoch: int, stop: _StopSignals) -> EpochOutcome:
        """The steps of `epoch` from the current step on (a resumed run skips those already taken), with the
        periodic logs and checkpoints; stops early at train.max_steps, at a signal or at a non-finite loss."""
        train, state = self.config.train, self.state
        step = int(state.step.numpy())
        done = step - (epoch - 1) * self.steps_per_epoch  # steps of this epoch taken before a resume
        last = min(epoch * self.steps_per_epoch, train.max_steps or math.inf)
        rate = state.schedule.on_epoch_start(epoch)
        state.set_learning_rate(rate)
        epoch_start = interval_start = time.perf_counter()  # the epoch line's seconds: docs/training.md
        batches = self._input.batches(step)
        outcome, interval = EpochOutcome(step), RunningSums()
        pending: list[tuple[int, dict[str, tf.Tensor]]] = []
        interval_steps = 0
        bar = progress_bar(self.steps_per_epoch, f"epoch {epoch}/{train.epochs}", self.progress, unit="step",
                           initial=done, leave=False)  # the epoch's summary line stays
        with _reading(self.prepared), contextlib.closing(bar):
            while step < last:
                batch, labels = next(batches)
                self._input.took()
                if step == (epoch - 1) * self.steps_per_epoch and self.config.runtime.distribute == "none":
                    self.summaries.augmented_images(batch, step, train.tensorboard_images, self.prepared.stats,
                                                    self.config.data.mean, self.config.data.pca_scale)
                poison = tf.constant(self.loss_poison(step + 1), tf.float32)
                pending.append((step + 1, self._train_step(batch, labels, poison)))
                step += 1
                interval_steps += 1
                state.step.assign(step)
                bar.update(1)
                if step % train.log_every_steps == 0 or step == train.max_steps or stop.signum:
                    outcome.bad_step = self._flush(pending, interval)
                    if outcome.bad_step:
                        return outcome
                    outcome.sums.add(interval.totals)
                    now = time.perf_counter()
                    seconds, metrics = now - interval_start, interval.result()
                    images_per_second = interval.count / seconds if seconds > 0 else float("nan")
                    self.summaries.scalars({"train/loss": metrics["loss"], "train/top1_error": metrics["top1_error"],
                                            "train/top5_error": metrics["top5_error"], "train/learning_rate": rate,
                                            "train/images_per_second": images_per_second,
                                            "train/step_time_ms": 1000 * seconds / interval_steps}, step)
                    bar.set_postfix(loss=f"{metrics['loss']:.3f}", img_s=f"{images_per_second:.0f}", lr=f"{rate:.2g}")
                    interval.reset()
                    interval_start, interval_steps = now, 0
                stopping = stop.signum or (step == last and step < epoch * self.steps_per_epoch)
                if self.checkpoints.due(step) or stopping:
                    outcome.bad_step = self._flush(pending, interval) or self._save_checked()
                    if outcome.bad_step:
                        return outcome
                if stop.signum:
                    break
            outcome.bad_step = self._flush(pending, interval)
        outcome.sums.add(interval.totals)
        outcome.step, outcome.seconds = step, time.perf_counter() - epoch_start
        outcome.finished = step == epoch * self.steps_per_epoch and not stop.signum
        return outcome

    def _training_batches(self, epochs: range, skip: int) -> Any:
        """The distributed training batches of `epochs`, without the first `skip` of the first (`_TrainingInput`)."""
        dataset = data_lib.run_batches(self.prepared, self.config.data, self.global_batch, self.config.runtime.seed,
                                       epochs, skip, deterministic=self.config.runtime.deterministic)
        return self.state.strategy.experimental_distribute_dataset(_split_batches(dataset))

    def end_epoch(self, epoch: int, outcome: EpochOutcome) -> int | None:
        """Evaluates (when due), lets the schedule see the validation error, logs and saves the epoch; returns the
        step when a weight is not finite (then nothing was evaluated or saved)."""
        train, state, step = self.config.train, self.state, outcome.step
        if not self._weights_finite():  # before the schedule sees an evaluation of broken weights
            return step
        seconds = outcome.seconds
        record: dict[str, Any] = {"epoch": epoch, "step": step, "train": outcome.sums.result() if outcome.sums.count
                                  else {}, "learning_rate": state.schedule.learning_rate,
                                  "images_per_second": outcome.sums.count / seconds if seconds > 0 else float("nan")}
        if epoch % train.eval_every_epochs == 0 or epoch == train.epochs:
            record["val"] = val = self.evaluate(ten_crop=False)
            self.summaries.scalars({f"val/{k}": v for k, v in val.items()}, step)
            if state.schedule.update(val["top1_error"]):
                record["lr_divided_to"] = state.schedule.learning_rate
        self.summaries.epoch_images(state.model, step, train.histograms)
        state.epoch.assign(epoch)
        self._save()
        self.history.append(record)
        if self.verbose:
            line = f"epoch {epoch}/{train.epochs} " + _fmt(record["train"], "train")
            if "val" in record:
                line += " | " + _fmt(record["val"], "val")
            line += f" | lr {record['learning_rate']:.3g}"
            if record["train"]:
                line += f" | {record['images_per_second']:.0f} img/s, {seconds:.0f} s"
            if "lr_divided_to" in record:
                line += f" | val error stalled: lr -> {record['lr_divided_to']:.3g}"
            write(line)
        return None

    def evaluate(self, ten_crop: bool = False, split: str = "val") -> dict[str, float]:
        """Loss and top-1/top-5 error over a whole split: the centre crop, or the average of ten crops."""
        batch = max(1, self.global_batch // 10) if ten_crop else self.global_batch
        dataset = data_lib.eval_dataset(self.prepared, self.config.data, batch, split=split, ten_crop=ten_crop)
        dataset = self.state.strategy.experimental_distribute_dataset(_split_batches(dataset))
        step, running = self._eval_steps[ten_crop], RunningSums()
        total = self.prepared.num_val if split == "val" else self.prepared.num_train
        bar = progress_bar(math.ceil(total / batch), f"eval {'ten-crop' if ten_crop else 'centre'}", self.progress,
                           unit="batch", leave=False)
        pending = []
        with _reading(self.prepared), contextlib.closing(bar):
            for images, labels in dataset:
                pending.append(step(images, labels))
                bar.update(1)
        for sums in pending:
            running.add(sums)
        return running.result()

    def _final_evaluation(self) -> TrainResult:
        """The centre-crop figures of the final weights (reused from the last epoch when they are its), the ten-crop
        evaluation, and the run's summary."""
        state, step = self.state, int(self.state.step.numpy())
        last = self.history[-1] if self.history else {}
        val = last["val"] if "val" in last and last["step"] == step else None
        if val is None:  # stopped inside an epoch: evaluate the current weights
            val = self.evaluate(ten_crop=False)
            self.summaries.scalars({f"val/{k}": v for k, v in val.items()}, step)
        ten = None
        if self.config.train.ten_crop_at_end:
            ten = self.evaluate(ten_crop=True)
            self.summaries.scalars({f"val_ten_crop/{k}": v for k, v in ten.items()}, step)
            if self.verbose:
                write(_fmt(ten, "final val (ten crops):"))
        result = TrainResult(self.run_dir, self.config, step, int(state.epoch.numpy()), self.checkpoints.latest,
                             val, ten, self.history, chief=state.is_chief)
        if state.is_chief:
            self.directory.write_summary({"step": step, "epoch": result.epoch, "checkpoint": result.checkpoint,
                                          "val": val, "val_ten_crop": ten,
                                          "learning_rate": state.schedule.learning_rate})
        return result

    def _already_complete(self) -> TrainResult:
        """A rerun of a finished run: says so and returns the figures of the run's summary (evaluating only when
        there is none); nothing is trained, saved or written."""
        train, state = self.config.train, self.state
        step, epoch = int(state.step.numpy()), int(state.epoch.numpy())
        done = f"{epoch}/{train.epochs} epochs" if epoch >= train.epochs else f"step {step} of train.max_steps"
        write(f"run already complete ({done}): {self.run_dir}; raise train.epochs to train on")
        summary = self.directory.read_summary() or {}
        val = summary.get("val") or self.evaluate(ten_crop=False)
        return TrainResult(self.run_dir, self.config, step, epoch, self.checkpoints.latest, val,
                           summary.get("val_ten_crop"), [], already_complete=True)

    # -- saving ------------------------------------------------------------------------------------------------------

    def _flush(self, pending: list[tuple[int, dict[str, tf.Tensor]]], into: RunningSums) -> int | None:
        """Adds the pending steps' sums to `into`; returns the first step whose loss was not finite (else None)."""
        for step, sums in pending:
            if float(sums["nonfinite"]) > 0 or not math.isfinite(float(sums["loss"])):
                return step
            into.add({k: v for k, v in sums.items() if k != "nonfinite"})
        pending.clear()
        return None

    def _weights_finite(self) -> bool:
        return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in self.state.model.trainable_variables]))

    def _save_checked(self) -> int | None:
        """Saves a checkpoint unless a weight is not finite: then returns the step (nothing bad is ever written)."""
        if not self._weights_finite():
            return int(self.state.step.numpy())
        self._save()
        return None

    def _save(self) -> str:
        """Saves a checkpoint named by the step; a full disk is a RunDirError naming the latest good checkpoint."""
        return self.checkpoints.save(int(self.state.step.numpy()))


def train(config: Config | str, run_dir: str | None = None, resume: bool | None = None, progress: bool = True,
          verbose: bool = True, overrides: Sequence[str] = (),
          export: Callable[..., str] | None = None) -> TrainResult:
    """The one way into training: `python -m alexnet_tf.train`, `alexnet_tf.train` and the ablation runner call it.

    The config is resolved once (`resolve_run`: the devices and strategy, a train.init_from to fine-tune from, the
    prepared data; `overrides` name the keys the user set, which win over a fine-tuning source's), the run directory
    is made when none is given, `Trainer.fit` runs, and the run is exported when train.export_at_end says so.

    Args:
        config: A Config, a YAML file's path or a shipped config's name; `overrides` ("section.key=value") on top.
        run_dir: The run directory; None makes a new runs/<UTC timestamp>/ in the current folder (also runs/latest).
        resume: True: continue from the latest checkpoint (an error if there is none); False: refuse a directory that
            holds one; None: resume when there is one.
        export: `serving.savedmodel.export_run` (the caller passes it: the serving layer comes after training),
            called as export(run_dir, out_dir, progress=...) at the end of a run that trained and asks for it.

    Raises:
        InputError (or a subclass): bad config, data, run directory or devices.
    """
    if resume and run_dir is None:
        raise InputError("resuming needs the run directory to continue (--run-dir)")
    config = load_config(None, overrides, base=config) if isinstance(config, Config) else load_config(config, overrides)
    run = resolve_run(config, overrides, progress=progress, run_dir=run_dir)  # before a new run directory is made
    result = Trainer(run, run_dir or new_run_dir(), resume=resume, progress=progress, verbose=verbose).fit()
    if export and result.config.train.export_at_end and result.chief and not result.already_complete:
        out = export(result.run_dir, RunDir(result.run_dir).export_dir, progress=progress)
        result = dataclasses.replace(result, export=out)
    return result

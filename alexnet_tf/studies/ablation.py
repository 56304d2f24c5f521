"""The ablation study of the paper's claims: a baseline and one variant per switch, each over several seeds.

A study lives in one folder:

    STUDY/study.json          what was asked for (the resolved base config, the variants, the seeds)
    STUDY/runs/VARIANT-sSEED/ one ordinary run directory per run (resumable like any run)
    STUDY/records/VARIANT-sSEED.json  the figures of a finished run: ten-crop and centre errors, its curves
    STUDY/results.md, results.json, figures/*.png   the report (`alexnet_tf.studies.report`)

Running the study again continues where it stopped: finished runs are read from their records, an unfinished run
resumes from its latest checkpoint, the rest start.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf
from tensorflow.core.util import event_pb2

from alexnet_tf.config import Config, config_to_dict, load_config
from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.core.progress import progress_bar, write
from alexnet_tf.errors import InputError, RunBusyError
from alexnet_tf.runs.rundir import RunDir
from alexnet_tf.serving.savedmodel import export_run
from alexnet_tf.training import trainer

STUDY_FILE = "study.json"
FORMAT = "alexnet_tf-ablation-v1"


@dataclass(frozen=True)
class Variant:
    """One arm of the study: the config keys it changes from the baseline and the claim it tests."""

    name: str
    overrides: tuple[str, ...]
    label: str
    claim: str


# Each claim quoted from sections 3 and 4 of the paper (docs/paper-claims.md).
VARIANTS = (
    Variant("baseline", (), "the paper's choices", "(reference: every switch as in the paper)"),
    Variant("no_lrn", ("model.lrn=false",), "no LRN",
            "LRN \"reduces our top-1 and top-5 error rates by 1.4% and 1.2%\" (CIFAR-10: 13% -> 11%)"),
    Variant("non_overlapping_pool", ("model.pool=non_overlapping",), "2x2/2 pooling",
            "overlapping pooling \"reduces the top-1 and top-5 error rates by 0.4% and 0.3%\""),
    Variant("one_tower", ("model.towers=one",), "one tower",
            "two towers reduce \"top-1 and top-5 error rates by 1.7% and 1.2%\" against one net with half the "
            "kernels"),
    Variant("no_lighting", ("data.lighting=false",), "no PCA lighting",
            "PCA lighting \"reduces the top-1 error rate by over 1%\""),
    Variant("no_dropout", ("model.dropout=0",), "no dropout",
            "\"Without dropout, our network exhibits substantial overfitting\"; dropout \"roughly doubles the "
            "number of iterations required to converge\""),
    Variant("no_augment", ("data.augment=false",), "no crops or reflections",
            "\"Without this scheme, our network suffers from substantial overfitting\""),
    # tanh at its own rate: the best held-out error of the grid 0.001-0.1 after 3 epochs (`studies.variant_rate`,
    # docs/paper-claims.md); at the ReLU nets' 0.01 it trailed, and with the ReLU bias init it never left chance.
    Variant("tanh", ("model.activation=tanh", "train.learning_rate=0.03"), "tanh units",
            "ReLU nets \"train several times faster than their equivalents with tanh units\" (Figure 1: 25% "
            "training error)"),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its variant, seed, run directory, record file and resolved config."""

    variant: Variant
    seed: int
    run_dir: str
    record_path: str
    config: Config

    @property
    def name(self) -> str:
        return f"{self.variant.name}-s{self.seed}"

    def status(self) -> str:
        """"done" (a record exists), "partial" (a checkpoint exists) or "to do"."""
        if os.path.isfile(self.record_path):
            return "done"
        return "partial" if os.path.isdir(self.run_dir) and RunDir(self.run_dir).has_checkpoint() else "to do"


@dataclass(frozen=True)
class Study:
    """A planned study: the folder, the base config and its overrides, the seeds and the variants."""

    folder: str
    base: Config
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]

    def runs(self) -> list[PlannedRun]:
        """Every run, seed by seed (so that a partial study has every variant of its first seeds)."""
        planned = []
        for seed in self.seeds:
            for variant in self.variants:
                overrides = (*variant.overrides, f"runtime.seed={seed}")
                config = load_config(None, overrides, base=self.base)
                name = f"{variant.name}-s{seed}"
                planned.append(PlannedRun(variant, seed, os.path.join(self.folder, "runs", name),
                                          os.path.join(self.folder, "records", f"{name}.json"), config))
        return planned

    def description(self) -> dict[str, Any]:
        return {"format": FORMAT, "base_config": config_to_dict(self.base), "seeds": list(self.seeds),
                "variants": [v.name for v in self.variants],
                "variant_overrides": {v.name: list(v.overrides) for v in self.variants}}


def plan_study(folder: str, config_path: str | None, overrides: Sequence[str] = (), seeds: int = 3,
               variants: Sequence[str] = ()) -> Study:
    """The study in `folder` of the config at `config_path` (a file or a shipped name) with `overrides`.

    Raises:
        InputError: for an unknown variant, fewer than one seed, or a folder that holds a different study.
        ConfigError: for a bad config or override.
    """
    unknown = sorted(set(variants) - set(VARIANT_NAMES))
    if unknown:
        raise InputError(f"unknown variants {unknown}; the study knows: {', '.join(VARIANT_NAMES)}")
    if seeds < 1:
        raise InputError(f"--seeds {seeds}: a study needs at least one seed")
    chosen = tuple(v for v in VARIANTS if not variants or v.name in variants or v.name == "baseline")
    study = Study(os.path.abspath(folder), load_config(config_path, overrides), tuple(range(seeds)), chosen)
    existing = os.path.join(study.folder, STUDY_FILE)
    if os.path.isfile(existing):
        with open(existing, encoding="utf-8") as f:
            before = json.load(f)
        if before != study.description():
            changed = sorted(k for k in study.description() if before.get(k) != study.description()[k])
            raise InputError(f"study folder {study.folder!r} holds a study with other settings ({', '.join(changed)} "
                             "differ); rerun it with its own --config/--set/--seeds/--variants, or choose another "
                             "--study-dir")
    return study


def run_study(study: Study, progress: bool = True, verbose: bool = True,
              on_record: Callable[[PlannedRun, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Runs (or continues) every run of `study` and returns the records of those finished, in plan order.

    Several processes may run one study at once: a run that another one is training is skipped.
    """
    os.makedirs(os.path.join(study.folder, "records"), exist_ok=True)
    atomic_write_text(os.path.join(study.folder, STUDY_FILE), json.dumps(study.description(), indent=1))
    planned = study.runs()
    records, start, trained = [], time.monotonic(), 0
    bar = progress_bar(len(planned), "study", progress, unit="run")
    for number, run in enumerate(planned, 1):
        if run.status() == "done":
            with open(run.record_path, encoding="utf-8") as f:
                record = json.load(f)
        else:
            if verbose:
                write(f"[{number}/{len(planned)}] {run.name}: {' '.join(run.variant.overrides) or 'baseline'}")
            run_start = time.monotonic()
            try:
                result = trainer.train(run.config, run.run_dir, progress=False, verbose=verbose, export=export_run)
            except RunBusyError:
                # Another `ablate` of the same study is training it: several can share a study, one run each.
                write(f"[{number}/{len(planned)}] {run.name}: trained by another process; skipped")
                bar.update(1)
                continue
            record = collect_record(run, result)
            atomic_write_text(run.record_path, json.dumps(record, indent=1))
            keras.backend.clear_session()  # the next run builds a new model: free the old graph's memory
            trained += 1
            if verbose:
                elapsed = time.monotonic() - start
                left = (len(planned) - number) * elapsed / trained
                write(f"[{number}/{len(planned)}] {run.name}: ten-crop top-1 error "
                      f"{100 * record['ten_crop_top1_error']:.2f}% ({time.monotonic() - run_start:.0f} s); study "
                      f"{elapsed / 60:.0f} min in, about {left / 60:.0f} min left")
        records.append(record)
        if on_record:
            on_record(run, record)
        bar.update(1)
    bar.close()
    return records


def finished_records(study: Study) -> list[dict[str, Any]]:
    """The records of the study's finished runs (for a report of a study that is still running)."""
    records = []
    for run in study.runs():
        if os.path.isfile(run.record_path):
            with open(run.record_path, encoding="utf-8") as f:
                records.append(json.load(f))
    return records


def collect_record(run: PlannedRun, result: trainer.TrainResult) -> dict[str, Any]:
    """The figures of a finished run: final errors, and its curves from the run's TensorBoard events."""
    if not result.val_ten_crop:
        raise InputError(f"run {run.run_dir!r} has no ten-crop evaluation; the study needs train.ten_crop_at_end")
    curves = read_curves(RunDir(run.run_dir).tensorboard_dir)
    return {"run": run.name, "variant": run.variant.name, "seed": run.seed, "run_dir": run.run_dir,
            "ten_crop_top1_error": result.val_ten_crop["top1_error"],
            "ten_crop_top5_error": result.val_ten_crop["top5_error"],
            "centre_top1_error": result.val["top1_error"], "centre_top5_error": result.val["top5_error"],
            "steps": result.step, "epochs": result.epoch, **curves}


def _scalar_events(log_dir: str) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every scalar in the event files under `log_dir`; a step logged twice (a resumed run
    redoes the steps after its last checkpoint) keeps the later value."""
    found: dict[str, list[tuple[float, int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(log_dir), "**", "events.out.tfevents.*"), recursive=True)):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            event = event_pb2.Event.FromString(serialized)
            for value in event.summary.value:
                if value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    if array.ndim != 0 or array.dtype.kind not in "fiu":
                        continue  # images and histograms
                    number = float(array)
                else:
                    number = value.simple_value
                found.setdefault(value.tag, []).append((event.wall_time, int(event.step), number))
    return {tag: {step: v for _, step, v in sorted(items)} for tag, items in found.items()}


def _process_starts(log_dir: str, tag: str) -> set[int]:
    """The first step at which each event file under `log_dir` logged `tag`: each process of a run (the first and
    every resume after a kill) writes its own file, and its first interval holds its start-up (tracing the step)."""
    starts = set()
    for path in glob.glob(os.path.join(glob.escape(log_dir), "**", "events.out.tfevents.*"), recursive=True):
        steps = [int(event.step) for event in map(event_pb2.Event.FromString,
                                                 tf.data.TFRecordDataset(path).as_numpy_iterator())
                 if any(value.tag == tag for value in event.summary.value)]
        starts.update(steps[:1])
    return starts


def read_curves(log_dir: str) -> dict[str, Any]:
    """A run's curves from its TensorBoard events.

    Returns:
        {"train_curve": [[step, training seconds, top-1 error], ...] (the running training error of each logging
        interval, with dropout and augmentation on, as the paper's Figure 1 plots it; the seconds add up the
        intervals' step times, so evaluation, the time a killed run was down and tracing are not counted: the first
        interval of each process, which holds its start-up, counts at the rate of the interval after it),
        "epoch_curve": [{"epoch", "step",
        "train_top1_error" (mean of the epoch's intervals), "val_top1_error" (centre crop)}, ...]}.
    """
    events = _scalar_events(log_dir)
    errors, step_ms = events.get("train/top1_error", {}), events.get("train/step_time_ms", {})
    steps = sorted(errors)
    starts = _process_starts(log_dir, "train/step_time_ms") | set(steps[:1])
    train_curve, seconds, previous = [], 0.0, 0
    for i, step in enumerate(steps):
        # A process's first interval includes its start-up (tracing the train step): counted at the next one's rate.
        rate_at = steps[i + 1] if step in starts and i + 1 < len(steps) and steps[i + 1] not in starts else step
        seconds += step_ms.get(rate_at, 0.0) * (step - previous) / 1000
        train_curve.append([step, round(seconds, 3), errors[step]])
        previous = step
    val = events.get("val/top1_error", {})
    epoch_curve, last = [], 0
    for epoch, step in enumerate(sorted(val), 1):
        inside = [(s, e) for s, _, e in train_curve if last < s <= step]
        weights = [s - p for (s, _), p in zip(inside, [last] + [s for s, _ in inside[:-1]])]
        train = sum(w * e for w, (_, e) in zip(weights, inside)) / sum(weights) if inside else float("nan")
        epoch_curve.append({"epoch": epoch, "step": step, "train_top1_error": train, "val_top1_error": val[step]})
        last = step
    return {"train_curve": train_curve, "epoch_curve": epoch_curve}

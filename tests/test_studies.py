"""Tests for alexnet_tf.studies (the ablation study: statistics, plan, curves, report) and the ablate command."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet_tf import ablate
from alexnet_tf.errors import InputError, RunBusyError, RunDirError
from alexnet_tf.studies import ablation, report
from alexnet_tf.studies import statistics as st

# -- statistics ------------------------------------------------------------------------------------------------------


def test_t_quantiles_are_the_textbook_table():
    assert st.t_quantile_975(1) == 12.706 and st.t_quantile_975(2) == 4.303 and st.t_quantile_975(10) == 2.228
    assert st.t_quantile_975(4.9) == 2.776  # rounded down: conservative
    assert st.t_quantile_975(45) == 2.021 and st.t_quantile_975(10_000) == 1.980
    with pytest.raises(ValueError):
        st.t_quantile_975(0.5)


def test_welch_paired_and_ratio_against_hand_computed_cases():
    # means 2 and 5, variances 1 and 1, n 3 and 3: se = sqrt(2/3), df = 4, t = 2.776.
    d = st.welch([1, 2, 3], [4, 5, 6])
    half = 2.776 * math.sqrt(2 / 3)
    assert d.value == -3 and d.low == pytest.approx(-3 - half) and d.high == pytest.approx(-3 + half)
    assert d.verdict(+1) == st.OPPOSITE and d.verdict(-1) == st.REPRODUCED
    assert st.welch([1, 2, 3], [1.5, 2, 2.5]).verdict(+1) == st.NOT_SIGNIFICANT
    assert st.welch([1], [2, 3]).verdict(+1) == st.NOT_MEASURED
    # Paired differences 2, 3, 4: mean 3, sd 1, df 2.
    p = st.paired([3, 5, 7], [1, 2, 3])
    assert p.value == 3 and p.low == pytest.approx(3 - 4.303 / math.sqrt(3))
    assert p.verdict(+1) == st.REPRODUCED
    r = st.ratio([4, 4], [1, 1])
    assert (r.value, r.low, r.high) == pytest.approx((4, 4, 4))
    assert r.verdict(+1, null=1.0) == st.REPRODUCED
    assert st.ratio([1, 2], [1, 2]).verdict(+1, null=1.0) == st.NOT_SIGNIFICANT
    assert st.mean_sd([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx((5, math.sqrt(32 / 7)))


# -- curves and crossings --------------------------------------------------------------------------------------------


def test_crossing_interpolates_between_logging_points():
    curve = [[10, 1.0, 0.5], [20, 2.0, 0.3], [30, 3.0, 0.2], [40, 4.0, 0.1]]
    assert report.crossing(curve) == pytest.approx(25)  # halfway from 0.30 to 0.20
    assert report.crossing(curve, column=1) == pytest.approx(2.5)
    assert report.crossing(curve, threshold=0.5) == 10
    assert report.crossing(curve, threshold=0.05) is None
    values, censored = report.crossings([{"train_curve": curve}, {"train_curve": curve[:2]}])
    assert values == pytest.approx([25, 20]) and censored == 1  # never crossed: its last step, a lower bound


def test_read_curves_from_tensorboard_events(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step, (error, ms) in zip((10, 20, 30, 40), ((0.8, 900.0), (0.6, 100.0), (0.5, 100.0), (0.4, 200.0))):
            tf.summary.scalar("train/top1_error", error, step=step)
            tf.summary.scalar("train/step_time_ms", ms, step=step)
        tf.summary.scalar("val/top1_error", 0.55, step=20)
        tf.summary.scalar("val/top1_error", 0.45, step=40)
        tf.summary.image("conv1", tf.zeros([1, 4, 4, 3]), step=20)  # not a scalar: ignored
    writer.flush()
    curves = ablation.read_curves(str(tmp_path))
    # The first interval (tracing) is counted at the second's rate: 10 steps x 100 ms.
    assert [p[0] for p in curves["train_curve"]] == [10, 20, 30, 40]
    assert [p[1] for p in curves["train_curve"]] == pytest.approx([1.0, 2.0, 3.0, 5.0])
    assert [round(p[2], 4) for p in curves["train_curve"]] == [0.8, 0.6, 0.5, 0.4]
    epochs = curves["epoch_curve"]
    assert [e["step"] for e in epochs] == [20, 40]
    assert epochs[0]["train_top1_error"] == pytest.approx(0.7) and epochs[1]["train_top1_error"] == pytest.approx(0.45)
    assert epochs[1]["val_top1_error"] == pytest.approx(0.45)


# -- the plan --------------------------------------------------------------------------------------------------------


def test_the_plan_has_every_variant_for_every_seed(tmp_path):
    study = ablation.plan_study(str(tmp_path / "s"), "fashion_mnist_ablation", seeds=3)
    runs = study.runs()
    assert len(runs) == 8 * 3 and len({r.name for r in runs}) == 24
    by_name = {r.name: r for r in runs}
    assert by_name["no_lrn-s1"].config.model.lrn is False and by_name["no_lrn-s1"].config.runtime.seed == 1
    assert by_name["tanh-s0"].config.model.activation == "tanh"
    assert by_name["one_tower-s2"].config.model.towers == "one"
    assert by_name["non_overlapping_pool-s0"].config.model.pool == "non_overlapping"
    assert by_name["no_dropout-s0"].config.model.dropout == 0
    assert by_name["no_lighting-s0"].config.data.lighting is False
    assert by_name["no_augment-s0"].config.data.augment is False
    assert by_name["baseline-s0"].config == ablation.load_config("fashion_mnist_ablation", ["runtime.seed=0"])
    assert {r.status() for r in runs} == {"to do"}
    only = ablation.plan_study(str(tmp_path / "t"), "fashion_mnist_ablation", seeds=1, variants=["tanh"])
    assert [r.name for r in only.runs()] == ["baseline-s0", "tanh-s0"]
    with pytest.raises(InputError, match="unknown variants \\['lrn'\\]"):
        ablation.plan_study(str(tmp_path / "u"), "fashion_mnist_ablation", variants=["lrn"])


def test_a_study_folder_refuses_other_settings(tmp_path):
    folder = str(tmp_path / "s")
    study = ablation.plan_study(folder, "fashion_mnist_ablation", seeds=2)
    os.makedirs(folder)
    with open(os.path.join(folder, ablation.STUDY_FILE), "w") as f:
        json.dump(study.description(), f)
    ablation.plan_study(folder, "fashion_mnist_ablation", seeds=2)  # the same study: fine
    with pytest.raises(InputError, match="other settings \\(seeds differ\\)"):
        ablation.plan_study(folder, "fashion_mnist_ablation", seeds=3)
    with pytest.raises(InputError, match="base_config differ"):
        ablation.plan_study(folder, "fashion_mnist_ablation", ["train.epochs=2"], seeds=2)


def test_dry_run_lists_the_study(tmp_path, capsys):
    assert ablate.main(["--config", "fashion_mnist", "--dry-run", "--study-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "24 runs (8 variants x 3 seeds)" in out
    assert "baseline-s0" in out and "tanh-s2" in out and "model.activation=tanh" in out
    assert not os.path.exists(tmp_path / "s")  # a dry run writes nothing


# -- the report ------------------------------------------------------------------------------------------------------


def fake_record(variant, seed, error, cross_at, gap=0.02, epochs=4, spe=100):
    """A record whose training error falls linearly to 0.25 at step `cross_at` (None: never below 0.3)."""
    steps = np.arange(10, epochs * spe + 1, 10)
    if cross_at is None:
        train = np.full(len(steps), 0.3)
    else:
        train = np.clip(0.9 - (0.9 - 0.25) * steps / cross_at, 0.05, 1)
    curve = [[int(s), float(s) / 10, float(e)] for s, e in zip(steps, train)]
    epoch_curve = [{"epoch": e, "step": e * spe, "train_top1_error": error - gap, "val_top1_error": error}
                   for e in range(1, epochs + 1)]
    return {"run": f"{variant}-s{seed}", "variant": variant, "seed": seed, "ten_crop_top1_error": error,
            "ten_crop_top5_error": error / 5, "centre_top1_error": error + 0.01, "centre_top5_error": error / 4,
            "train_curve": curve, "epoch_curve": epoch_curve}


def fake_study_records():
    records = []
    for seed, jitter in enumerate((-0.002, 0.0, 0.002)):
        records += [fake_record("baseline", seed, 0.15 + jitter, 100 + 10 * seed),
                    fake_record("no_lrn", seed, 0.18 + jitter, 100),  # clearly worse: reproduced
                    fake_record("non_overlapping_pool", seed, 0.15 - jitter, 100),  # no difference
                    fake_record("one_tower", seed, 0.12 + jitter, 100),  # better: opposite
                    fake_record("no_dropout", seed, 0.17 + jitter, 50 + 5 * seed, gap=0.08),
                    fake_record("no_augment", seed, 0.20 + jitter, 40, gap=0.15),
                    fake_record("tanh", seed, 0.2 + jitter, 600 + 20 * seed, epochs=8)]
    return records


def test_the_tables_give_each_claim_its_verdict():
    groups = report.by_variant(fake_study_records())
    rows = {r["variant"]: r for r in report.error_rows(groups)}
    assert rows["baseline"]["top1_error"]["text"] == "15.00 ± 0.20"
    assert rows["no_lrn"]["verdict"] == st.REPRODUCED and rows["no_lrn"]["difference"]["text"].startswith("+3.00 [")
    assert rows["non_overlapping_pool"]["verdict"] == st.NOT_SIGNIFICANT
    assert rows["one_tower"]["verdict"] == st.OPPOSITE
    assert "no_lighting" not in rows  # not run: not in the table
    claims = {r["claim"]: r for r in report.claim_rows(groups)}
    figure1 = claims["ReLU trains faster than tanh (Figure 1)"]
    assert figure1["verdict"] == st.REPRODUCED and figure1["difference"]["value"] == pytest.approx(
        math.exp(np.mean(np.log([600, 620, 640])) - np.mean(np.log([100, 110, 120]))), rel=0.02)
    assert claims["dropout slows convergence"]["verdict"] == st.REPRODUCED
    assert claims["without dropout the net overfits"]["difference"]["value"] == pytest.approx(0.06)
    assert claims["without crops and reflections the net overfits"]["verdict"] == st.REPRODUCED
    ten = claims["ten crops beat the centre crop"]
    assert ten["difference"]["value"] == pytest.approx(0.01) and ten["verdict"] == st.REPRODUCED


def test_a_tanh_net_that_never_reaches_25_percent_is_a_lower_bound():
    records = [fake_record("baseline", s, 0.15, 100) for s in range(2)]
    records += [fake_record("tanh", s, 0.3, None) for s in range(2)]
    (row,) = [r for r in report.claim_rows(report.by_variant(records)) if "tanh" in r["claim"]]
    assert row["difference"]["text"].startswith(">= ") and row["measured"]["tanh_never_reached"] == 2
    records = [fake_record("baseline", s, 0.15, None) for s in range(2)] + records[2:]
    (row,) = [r for r in report.claim_rows(report.by_variant(records)) if "tanh" in r["claim"]]
    assert row["verdict"] == st.NOT_MEASURED


def test_write_report_writes_the_table_the_json_and_readable_figures(tmp_path):
    study = ablation.plan_study(str(tmp_path / "s"), "fashion_mnist_ablation", seeds=3)
    records = fake_study_records()
    paths = report.write_report(study, records)
    text = open(paths["markdown"]).read()
    assert "| no LRN |" in text and "reproduced" in text and "opposite" in text
    assert "**Partial: 21 of 24 runs finished.**" in text  # no_lighting never ran
    payload = json.load(open(paths["json"]))
    assert payload["finished_runs"] == 21 and len(payload["runs"]) == 21 and payload["planned_runs"] == 24
    assert {r["variant"] for r in payload["errors"]} >= {"baseline", "no_lrn", "tanh"}
    for name in ("figure1", "curves", "overfitting"):
        with Image.open(paths[name]) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 350
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 10  # something is drawn


# -- the real thing, small -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_small_real_study_writes_its_report_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALEXNET_TF_CACHE", str(tmp_path / "cache"))
    folder = str(tmp_path / "study")
    overrides = ["data.holdout=20", "data.train_images=48", "data.image_size=68", "model.width=0.125",
                 "model.fc_width=32", "train.epochs=2", "train.batch_size=16", "train.log_every_steps=1"]
    args = ["--config", "fashion_mnist_ablation", "--study-dir", folder, "--seeds", "2", "--variants",
            "tanh,no_dropout,one_tower", "--no-progress"] + [a for o in overrides for a in ("--set", o)]
    assert ablate.main(args) == 0
    out = capsys.readouterr().out
    assert "| tanh units |" in out and "ReLU trains faster than tanh" in out
    payload = json.load(open(os.path.join(folder, "results.json")))
    assert payload["finished_runs"] == payload["planned_runs"] == 8
    for run in payload["runs"]:
        assert 0 <= run["ten_crop_top1_error"] <= 1 and len(run["epoch_curve"]) == 2
        assert len(run["train_curve"]) == 2 * 3  # 48 images / batch 16 = 3 steps per epoch, logged every step
    assert {r["verdict"] for r in payload["errors"][1:]} <= {st.REPRODUCED, st.NOT_SIGNIFICANT, st.OPPOSITE}
    for name in report.FIGURES.values():
        assert os.path.getsize(os.path.join(folder, "figures", name)) > 10_000
    # Rerunning reuses every finished run; a run whose record is lost is read back from its finished run directory.
    os.remove(os.path.join(folder, "records", "tanh-s1.json"))
    trained = []
    real_train = ablation.trainer.train
    monkeypatch.setattr(ablation.trainer, "train", lambda *a, **k: trained.append(a[1]) or real_train(*a, **k))
    assert ablate.main(args) == 0
    assert trained == [os.path.join(folder, "runs", "tanh-s1")]
    assert "run already complete" in capsys.readouterr().out
    assert ablate.main(args[:4] + ["--dry-run"] + args[4:]) == 0
    assert capsys.readouterr().out.count(" done ") == 8


def test_a_run_trained_by_another_process_is_skipped(tmp_path, monkeypatch):
    study = ablation.plan_study(str(tmp_path / "s"), "fashion_mnist_ablation", seeds=1, variants=["tanh"])
    busy = RunBusyError("run directory 'x' is held by PID 1")  # caught by its class, whatever it says
    calls = []

    def train(config, run_dir, **kwargs):
        calls.append(os.path.basename(run_dir))
        raise busy

    monkeypatch.setattr(ablation.trainer, "train", train)
    assert ablation.run_study(study, progress=False) == []
    assert calls == ["baseline-s0", "tanh-s0"]
    monkeypatch.setattr(ablation.trainer, "train", lambda *a, **k: (_ for _ in ()).throw(
        RunDirError("cannot use 'x' as a run directory (read-only)")))
    with pytest.raises(RunDirError, match="read-only"):
        ablation.run_study(study, progress=False)


def test_one_tower_nets_have_their_conv1_drawn():
    from alexnet_tf.figures.drawing import conv1_grids
    from alexnet_tf.models.alexnet import build_alexnet

    grids = conv1_grids(build_alexnet(num_classes=3, width=0.125, fc_width=8, input_size=67, towers="one"))
    assert list(grids) == ["one"] and grids["one"].ndim == 3
    two = conv1_grids(build_alexnet(num_classes=3, width=0.125, fc_width=8, input_size=67))
    assert list(two) == ["a", "b"]


def test_another_threshold_is_reported_beside_the_papers(tmp_path):
    study = ablation.plan_study(str(tmp_path / "s"), "fashion_mnist_ablation", seeds=3)
    records = [fake_record("baseline", s, 0.15, None) for s in range(3)]  # 0.3 at best: 25 % never reached
    records += [fake_record("tanh", s, 0.3, None) for s in range(3)]
    paths = report.write_report(study, records)
    assert "relu never reached 25% in 3 runs" in open(paths["markdown"]).read()
    other = report.write_report(study, records, threshold=0.5)
    assert other["markdown"].endswith("results-t50.md") and other["figure1"].endswith("figure1_relu_tanh-t50.png")
    assert json.load(open(other["json"]))["threshold"] == 0.5
    assert os.path.isfile(paths["markdown"])  # the paper's report stays


def test_a_restart_adds_no_downtime_or_start_up_to_the_time_axis(tmp_path):
    # issue 24: 0.148 s jumped to 2.598 s across a restart. Two processes, two event files: the second starts with a
    # slow interval (its tracing) after a pause; each process's first interval counts at its next interval's rate.
    for suffix, logged in ((".first", ((10, 0.8, 900.0), (20, 0.6, 100.0))),
                           (".resumed", ((30, 0.5, 5000.0), (40, 0.4, 200.0)))):
        writer = tf.summary.create_file_writer(str(tmp_path), filename_suffix=suffix)
        with writer.as_default():
            for step, error, ms in logged:
                tf.summary.scalar("train/top1_error", error, step=step)
                tf.summary.scalar("train/step_time_ms", ms, step=step)
        writer.flush()
        writer.close()
    curve = ablation.read_curves(str(tmp_path))["train_curve"]
    # 10 steps at 100 ms, 10 at 100 ms, 10 at 200 ms (not 5000), 10 at 200 ms
    assert [p[1] for p in curve] == pytest.approx([1.0, 2.0, 4.0, 6.0])


def test_the_report_names_the_validation_split_for_what_it_is():
    from alexnet_tf.config import load_config, replace

    demo = load_config("tiny").data
    assert report.validation_split(demo) == "the demo's validation images"
    assert report.validation_split(replace(load_config("tiny"), data={"source": "fashion_mnist"}).data) == \
        "the Fashion-MNIST test set"
    held = replace(load_config("tiny"), data={"source": "fashion_mnist", "holdout": 500}).data
    assert report.validation_split(held) == "500 held-out training images"

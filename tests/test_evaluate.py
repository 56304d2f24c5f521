"""Tests of alexnet_tf.evaluate: top-1/top-5 error of the centre crop and the ten crops against a NumPy computation
from the same weights, a run and its export giving the same numbers, softmax-averaging ensembles, bad arguments."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np
import pytest
import tensorflow as tf
from helpers import TinyRun

from alexnet_tf import cli, evaluate
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import ModelError
from alexnet_tf.inference import evaluation, trained
from alexnet_tf.inference.batches import SplitOutputs
from alexnet_tf.models.alexnet import build_alexnet

# The shared session fixtures (tiny data, runs, export), built once for the three evaluation test files.


def _records(prepared, split: str) -> tuple[list[bytes], np.ndarray]:
    """The prepared split's encoded squares and labels, read with the protobuf API (not the project's parser)."""
    encoded, labels = [], []
    for path in prepared.files(split):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            encoded.append(example.features.feature["image/encoded"].bytes_list.value[0])
            labels.append(example.features.feature["image/class/label"].int64_list.value[0])
    return encoded, np.array(labels)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def reference_probabilities(run: TinyRun, prepared, split: str = "val") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, centre probabilities, ten-crop probabilities), computed outside the project's preprocessing.

    The paper's test procedure in NumPy: the prepared square minus the run's mean image, the centre and four
    corner patches and their reflections, the softmax of each, averaged; the network is a fresh build holding the
    weights the fixture wrote into the checkpoint.
    """
    model = build_alexnet(**asdict(run.config.model), input_size=run.config.data.crop_size)
    for variable in model.weights:
        variable.assign(run.weights[variable.path])
    mean = np.load(os.path.join(run.path, "stats.npz"))["mean_image"].astype(np.float32)
    encoded, labels = _records(prepared, split)
    c = run.config.data.crop_size
    centre, ten = [], []
    for data in encoded:
        image = tf.io.decode_jpeg(data, channels=3).numpy().astype(np.float32) - mean
        s = image.shape[0]
        corners = [((s - c) // 2, (s - c) // 2), (0, 0), (0, s - c), (s - c, 0), (s - c, s - c)]
        patches = np.stack([image[t:t + c, x:x + c] for t, x in corners])
        patches = np.concatenate([patches, patches[:, :, ::-1]])
        p = _softmax(model(patches, training=False).numpy().astype(np.float64))
        centre.append(p[0])
        ten.append(p.mean(axis=0))
    return labels, np.array(centre), np.array(ten)


def numpy_errors(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1/top-5 error by NumPy, with ties counted as the documented rule says (`metrics.top_k_wrong`): over every
    order of the classes tied with the true one, the fraction that puts it below k. (Saturated probabilities tie: two
    tiny runs that each give 1.0 to another class average to 0.5 and 0.5.)"""
    errors = {1: [], 5: []}
    for row, y in zip(probabilities, labels):
        higher, tied = int(np.sum(row > row[y])), int(np.sum(row == row[y])) - 1
        positions = range(higher + 1, higher + tied + 2)  # the ranks the true class takes over the tie orders
        for k in errors:
            errors[k].append(np.mean([position > k for position in positions]))
    return {f"top{k}_error": float(np.mean(values)) for k, values in errors.items()}


@pytest.fixture(scope="module")
def reference_a(tiny_run, tiny_data):
    return reference_probabilities(tiny_run, tiny_data[1])


def test_errors_equal_numpy_from_the_same_weights(tiny_run, tiny_data, reference_a) -> None:
    labels, centre, ten = reference_a
    outputs: list[SplitOutputs] = []
    report = evaluation.evaluate_models([trained.load_model(tiny_run.path)], progress=False, outputs=outputs)
    (out,) = outputs
    np.testing.assert_array_equal(out.labels, labels)
    np.testing.assert_allclose(out.center, centre, atol=2e-6)
    np.testing.assert_allclose(out.ten, ten, atol=2e-6)
    # the tiny untrained net must not be trivially right or wrong, or the comparison would prove little
    ref_centre, ref_ten = numpy_errors(centre, labels), numpy_errors(ten, labels)
    assert 0 < ref_ten["top1_error"] < 1 and 0 < ref_ten["top5_error"] < 1
    assert report["images"] == len(labels) == 24 and report["classes"] == 8
    (result,) = report["models"]
    assert result["center_crop"] == pytest.approx(ref_centre, abs=1e-12)
    assert result["ten_crop"] == pytest.approx(ref_ten, abs=1e-12)
    assert report["ensemble"] is None
    # per-class accuracy
    order = np.argsort(-ten, axis=1)
    for row in result["per_class"]["ten_crop"]:
        mine = labels == row["index"]
        assert row["images"] == mine.sum() == 3
        assert row["top1_accuracy"] == pytest.approx(np.mean(order[mine, 0] == row["index"]))
        assert row["top5_accuracy"] == pytest.approx(np.mean([row["index"] in o[:5] for o in order[mine]]))


def test_run_and_its_export_give_the_same_numbers(tiny_run, tiny_export, tmp_path, capsys) -> None:
    run_config = os.path.join(tiny_run.path, "config.yaml")
    run_out, export_out = [], []
    run = evaluation.evaluate_models([trained.load_model(tiny_run.path)], progress=False, outputs=run_out)
    # an export outside its run directory: the run's config.yaml says which data it was made for
    exported = evaluation.evaluate_models([trained.load_model(tiny_export)], progress=False, outputs=export_out,
                                        config_file=run_config)
    np.testing.assert_allclose(run_out[0].ten, export_out[0].ten, atol=1e-6)
    np.testing.assert_allclose(run_out[0].center, export_out[0].center, atol=1e-6)
    assert run["models"][0]["kind"] == "run" and exported["models"][0]["kind"] == "export"
    for key in ("center_crop", "ten_crop", "per_class"):
        assert run["models"][0][key] == exported["models"][0][key]

    # the command line prints the table and writes the same report as JSON
    path = str(tmp_path / "export.json")
    argv = ["--model", tiny_export, "--config", run_config, "--json", path, "--no-progress"]
    assert cli.run(evaluate.main, argv) == 0
    table = capsys.readouterr().out
    assert "Top-1 err (10 crops)" in table and tiny_export in table and path in table
    written = json.load(open(path))["models"][0]
    assert written["ten_crop"] == exported["models"][0]["ten_crop"]
    assert written["per_class"]["center_crop"] == exported["models"][0]["per_class"]["center_crop"]


def test_ensemble_averages_softmax_outputs(tiny_run, tiny_run_b, tiny_data, reference_a) -> None:
    labels, centre_a, ten_a = reference_a
    _, centre_b, ten_b = reference_probabilities(tiny_run_b, tiny_data[1])
    outputs: list[SplitOutputs] = []
    report = evaluation.evaluate_models([trained.load_model(tiny_run.path), trained.load_model(tiny_run_b.path)],
                                      progress=False, outputs=outputs)
    assert len(outputs) == 3
    ensemble = outputs[2]
    np.testing.assert_allclose(ensemble.ten, (ten_a + ten_b) / 2, atol=2e-6)
    np.testing.assert_allclose(ensemble.center, (centre_a + centre_b) / 2, atol=2e-6)
    # The errors, by NumPy, of the evaluator's averages (equal to the references' to 2e-6, just above, but not
    # bitwise: where one model's probability is 1.0 in float32 and the reference's 0.99999994, the evaluator's
    # average can tie two classes at 0.5 that the reference's does not; the tie rule then counts half an error).
    assert report["ensemble"]["ten_crop"] == pytest.approx(numpy_errors(ensemble.ten, labels), abs=1e-12)
    assert report["ensemble"]["center_crop"] == pytest.approx(numpy_errors(ensemble.center, labels), abs=1e-12)
    assert report["models"][1]["ten_crop"] == pytest.approx(numpy_errors(ten_b, labels), abs=1e-12)
    # averaging logits instead of probabilities would rank differently somewhere; make sure the data can tell
    assert not np.allclose(ensemble.ten, _softmax(np.log(ten_a) + np.log(ten_b)), atol=1e-3)
    assert "ensemble of 2" in evaluation.format_table(report)


def test_bad_models_and_arguments(tmp_path, tiny_run, capsys) -> None:
    with pytest.raises(ModelError, match="no_such_run.*no such file"):
        trained.load_model(str(tmp_path / "no_such_run"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty.*neither a run directory"):
        trained.load_model(str(tmp_path / "empty"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelError, match="file.txt.*is a file"):
        trained.load_model(str(tmp_path / "file.txt"))
    assert cli.run(evaluate.main, ["--model", tiny_run.path, "--model", str(tmp_path / "gone"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "gone" in err and "no such file" in err

    model = trained.load_model(tiny_run.path)

    class OtherData:
        vocabulary = Vocabulary(("x", "y"), ("x", "y"))

    with pytest.raises(ModelError, match="8 classes but --data 'elsewhere' has 2"):
        evaluation.check_vocabulary(model, OtherData(), "elsewhere")
    with pytest.raises(ModelError, match="--split"):
        evaluation.evaluate_models([model], split="test", progress=False)


def test_checkpoint_prefix_and_export_base_folder(tiny_run, tiny_export) -> None:
    prefix = tf.train.latest_checkpoint(os.path.join(tiny_run.path, "checkpoints"))
    by_prefix = trained.load_model(prefix)
    assert by_prefix.kind == "run" and os.path.samefile(by_prefix.path, tiny_run.path)
    base = trained.load_model(os.path.dirname(tiny_export))
    assert base.kind == "export" and base.path.endswith(os.path.join("alexnet", "1"))
    assert base.image_size == tiny_run.config.data.image_size  # from the export's preprocessing.json

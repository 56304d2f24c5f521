"""Tests for layer activations by name (models.activations, inference.activations) and the features command:
checked against the forward pass (softmax(fc8) is the centre-crop prediction, fc7 over ten crops is the features
signature's), the towers' concatenation, the ReLU, skipped bad images, the files written, and the docs' table."""

from __future__ import annotations

import os

import h5py
import helpers
import numpy as np
import pytest

from alexnet_tf import features
from alexnet_tf.inference.activations import model_activations  # what TrainedModel.activations calls
from alexnet_tf.inference.trained import load_model
from alexnet_tf.models.activations import LAYER_TABLE, activation_model
from alexnet_tf.models.alexnet import build_alexnet

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "model.md")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed in range(3):
        path = folder / f"p{seed}.jpg"
        path.write_bytes(helpers.encode_image(helpers.photo(80, 100 + 10 * seed, seed=seed, textured=True), "JPEG"))
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def run_model(tiny_run):
    return load_model(tiny_run.path)


def test_activations_agree_with_the_forward_pass(run_model, photos):
    names = ("conv1", "conv1_pre", "conv1_a", "conv1_b", "lrn2", "pool5", "fc6", "fc6_pre", "fc7", "fc8", "prob")
    got = run_model.activations(photos, names)
    assert got.paths == photos and not got.errors
    center = run_model.probabilities(photos, ten_crop=False)
    logits = got.layers["fc8"].astype(np.float64)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(1, keepdims=True), center, atol=1e-5)
    np.testing.assert_allclose(got.layers["prob"], center, atol=1e-5)
    np.testing.assert_array_equal(got.layers["conv1"], np.concatenate([got.layers["conv1_a"], got.layers["conv1_b"]],
                                                                      axis=-1))
    for name in ("conv1", "fc6"):
        pre = got.layers[f"{name}_pre"]
        assert (pre < 0).any()
        np.testing.assert_allclose(got.layers[name], np.maximum(pre, 0), atol=1e-5)
    conv1 = run_model.keras_model.get_layer("conv1_a").filters * 2
    pool5 = run_model.keras_model.get_layer("pool5_a").output.shape
    assert got.layers["conv1"].shape[-1] == conv1
    assert got.layers["pool5"].shape == (3, *pool5[1:3], pool5[3] * 2)
    assert got.layers["fc7"].shape == (3, run_model.config.model.fc_width)


def test_fc7_over_ten_crops_is_the_features_signature(run_model, photos):
    got = model_activations(run_model, photos, ["fc7"], ten_crop=True)
    np.testing.assert_allclose(got.layers["fc7"], run_model.features(photos), atol=1e-5)
    center = model_activations(run_model, photos, ["fc7"]).layers["fc7"]
    assert not np.allclose(center, got.layers["fc7"], atol=1e-4)


def test_an_export_has_no_layer_activations(tiny_export, photos):
    from alexnet_tf.errors import ModelError

    with pytest.raises(ModelError, match="fc7 only"):
        load_model(tiny_export).activations(photos, ["conv1"])


def test_a_bad_image_is_listed_and_skipped(run_model, photos, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    got = model_activations(run_model, [photos[0], str(bad), photos[1]], ["pool1"], batch_size=3)
    assert got.paths == [photos[0], photos[1]] and list(got.errors) == [str(bad)]
    assert got.layers["pool1"].shape[0] == 2


def test_every_name_of_the_table_and_every_tower_layer_is_accepted():
    model = build_alexnet(num_classes=4, width=0.125, fc_width=32, input_size=67)
    names = [*LAYER_TABLE, "conv3_b", "conv3_b_pre", "lrn1_a", "fc7_a"]
    outputs = activation_model(model, names).output
    assert set(outputs) == set(names)
    assert outputs["conv3_b"].shape[-1] * 2 == outputs["conv3"].shape[-1]
    with pytest.raises(ValueError, match="known names"):
        activation_model(model, ["conv6"])


def test_the_docs_table_lists_every_name_with_its_torchvision_and_caffe_names():
    rows = {}
    for line in open(DOCS, encoding="utf-8"):
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in LAYER_TABLE:
            rows[cells[0]] = (cells[2], cells[3])
    assert rows == {name: (torch, caffe) for name, (_, torch, caffe) in LAYER_TABLE.items()}


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_the_command_writes_the_named_activations(tiny_run, photos, tmp_path, suffix, capsys):
    out = str(tmp_path / f"feats{suffix}")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    status = features.main([*photos[:2], str(bad), "--model", tiny_run.path, "--layers", "conv2,fc7_b",
                            "--out", out, "--no-progress"])
    assert status == 1  # one image skipped
    assert "bad.png" in capsys.readouterr().err
    if suffix == ".npz":
        with np.load(out) as f:
            stored = {k: f[k] for k in f.files}
    else:
        with h5py.File(out) as f:
            stored = {k: f[k][()] for k in f}
        stored["paths"] = stored["paths"].astype(str)
    assert [str(p) for p in stored["paths"]] == photos[:2]
    want = model_activations(load_model(tiny_run.path), photos[:2], ["conv2", "fc7_b"])
    np.testing.assert_allclose(stored["conv2"], want.layers["conv2"], rtol=1e-5, atol=1e-4)  # other batches
    assert stored["fc7_b"].shape == (2, tiny_run.config.model.fc_width // 2)


def test_the_command_refuses_an_unknown_layer_and_extension(tiny_run, photos, tmp_path):
    from alexnet_tf.errors import InputError, ModelError

    with pytest.raises(ModelError, match="known names"):
        features.main([photos[0], "--model", tiny_run.path, "--layers", "conv9", "--out", str(tmp_path / "f.npz")])
    with pytest.raises(InputError, match=".npz or .h5"):
        features.main([photos[0], "--model", tiny_run.path, "--out", str(tmp_path / "f.csv")])

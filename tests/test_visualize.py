"""Tests of alexnet_tf.visualize: the conv1 kernel figure's tiles equal the checkpoint's weights after the
documented scaling, fc7 neighbours (a training image finds itself; run and export agree; the cache is reused),
figure sizes, and bad query images reported while the others are drawn."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import encode_image, photo
from PIL import Image

from alexnet_tf import cli, visualize
from alexnet_tf.figures import layout
from alexnet_tf.inference import neighbors
from alexnet_tf.inference.evaluation import data_config_for
from alexnet_tf.inference.trained import load_model

# The shared session fixtures (tiny data, runs, export), built once for the three evaluation test files.

PAD = 1  # figures.kernel_grid's default padding, which the kernel figure uses


def test_kernel_figure_tiles_are_the_scaled_conv1_weights(tiny_run, tiny_export, tmp_path) -> None:
    out = str(tmp_path / "kernels.png")
    columns, zoom = 4, 3
    assert cli.run(visualize.main, ["kernels", "--model", tiny_run.path, "--out", out, "--columns", str(columns),
                           "--zoom", str(zoom)]) == 0
    picture = np.asarray(Image.open(out).convert("RGB"))
    n, size = 6, 11  # width 0.125: 6 conv1 kernels of 11x11 per tower
    rows = -(-n // columns)
    block = ((rows * (size + PAD) + PAD) * zoom, (columns * (size + PAD) + PAD) * zoom)
    placed = layout.kernel_figure_layout(block)
    assert picture.shape[:2] == placed["size"] == (2 * (layout.HEADING + block[0]) + layout.GAP,
                                                   max(block[1], layout.MIN_WIDTH))
    for tower in ("a", "b"):
        weights = tiny_run.weights[f"conv1_{tower}/kernel"].astype(np.float64)
        y0, x0 = placed[tower]
        for i in range(n):
            k = weights[..., i]
            expected = np.round((k - k.min()) / (k.max() - k.min()) * 255).astype(np.uint8)  # figures.py's scaling
            r, c = divmod(i, columns)
            y, x = y0 + (PAD + r * (size + PAD)) * zoom, x0 + (PAD + c * (size + PAD)) * zoom
            tile = picture[y:y + size * zoom, x:x + size * zoom]
            np.testing.assert_array_equal(tile, np.repeat(np.repeat(expected, zoom, axis=0), zoom, axis=1))
    # the export holds the same kernels
    exported = load_model(tiny_export).conv1_kernels()
    for tower in ("a", "b"):
        np.testing.assert_array_equal(exported[tower], tiny_run.weights[f"conv1_{tower}/kernel"])


def _train_record(prepared, index: int) -> bytes:
    raw = next(iter(tf.data.TFRecordDataset(list(prepared.files("train"))).skip(index).take(1))).numpy()
    return tf.train.Example.FromString(raw).features.feature["image/encoded"].bytes_list.value[0]


def test_gallery_run_and_export_agree_and_the_cache_is_reused(tiny_run, tiny_export, tiny_data, tmp_path,
                                                             monkeypatch) -> None:
    config, prepared = tiny_data
    run, exported = load_model(tiny_run.path), load_model(tiny_export)
    data_cfg = data_config_for(run)
    cache = str(tmp_path / "cache")
    g_run = neighbors.gallery_features(run, prepared, data_cfg, "train", 1, cache, progress=False)
    g_export = neighbors.gallery_features(exported, prepared, data_config_for(exported, config_file=os.path.join(
        tiny_run.path, "config.yaml")), "train", 1, None, progress=False)
    assert g_run.features.shape == (prepared.num_train, config.model.fc_width)
    np.testing.assert_allclose(g_run.features, g_export.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(g_run.indices, np.arange(prepared.num_train))
    assert os.path.isfile(g_run.path) and g_export.path == ""

    def no_computing(*args, **kwargs):
        raise AssertionError("the cached features should have been used")

    monkeypatch.setattr(run, "split_features", no_computing)
    again = neighbors.gallery_features(run, prepared, data_cfg, "train", 1, cache, progress=False)
    np.testing.assert_array_equal(again.features, g_run.features)
    with pytest.raises(AssertionError, match="cached"):  # another subset is another cache entry
        neighbors.gallery_features(run, prepared, data_cfg, "train", 4, cache, progress=False)
    monkeypatch.undo()
    sub = neighbors.gallery_features(run, prepared, data_cfg, "train", 4, None, progress=False)
    np.testing.assert_array_equal(sub.indices, np.arange(0, prepared.num_train, 4))
    np.testing.assert_allclose(sub.features, g_run.features[::4], rtol=1e-5, atol=1e-6)


def test_nearest_is_euclidean() -> None:
    gallery = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [-2.0, 0.0]])
    rows, dists = neighbors.nearest(gallery, np.array([[1.0, 0.0], [3.0, 3.0]]), k=3, chunk=3)
    np.testing.assert_array_equal(rows, [[0, 2, 3], [1, 2, 0]])
    np.testing.assert_allclose(dists, [[1.0, 1.0, 3.0], [1.0, np.sqrt(8), np.sqrt(18)]])


def test_neighbors_cli_finds_a_training_image_itself(tiny_run, tiny_data, tmp_path, capsys) -> None:
    _, prepared = tiny_data
    query = tmp_path / "train_07.jpg"
    query.write_bytes(_train_record(prepared, 7))
    other = tmp_path / "other.png"
    other.write_bytes(encode_image(photo(80, 100, 9, textured=True), "PNG"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    out = str(tmp_path / "neighbors.png")
    status = cli.run(visualize.main, ["neighbors", "--model", tiny_run.path, "--query", str(query), str(bad),
                                      str(other), "--out", out, "-k", "3", "--cache-dir", str(tmp_path / "features"),
                                      "--no-progress"])
    stdout, stderr = capsys.readouterr()
    assert status == 1 and "bad.jpg" in stderr and "cannot be decoded" in stderr
    picture = Image.open(out)
    assert picture.size == layout.neighbors_figure_size(2, 3)
    model = load_model(tiny_run.path)
    gallery = neighbors.gallery_features(model, prepared, data_config_for(model), "train", 1,
                                         str(tmp_path / "features"), progress=False)
    rows, dists = neighbors.nearest(gallery.features, model.features([query.read_bytes()]), 3)
    assert gallery.indices[rows[0, 0]] == 7 and dists[0, 0] < 1e-3 * max(1e-9, dists[0, 1])
    # the figure's first neighbour tile is training image 7 itself
    tile = neighbors.record_tiles(prepared, "train", [7], layout.NEIGHBOR_TILE)[7]
    x = layout.NEIGHBOR_PAD + layout.NEIGHBOR_TILE + layout.NEIGHBOR_PAD + layout.QUERY_GAP
    y = layout.NEIGHBOR_PAD
    shown = np.asarray(picture.convert("RGB"))[y:y + layout.NEIGHBOR_TILE, x:x + layout.NEIGHBOR_TILE]
    np.testing.assert_array_equal(shown, tile)
    assert str(query) in stdout and str(other) in stdout


def test_bad_model_is_a_clear_error(tmp_path, capsys) -> None:
    assert cli.run(visualize.main, ["kernels", "--model", str(tmp_path / "missing_run"), "--out",
                           str(tmp_path / "k.png")]) == 2
    assert "missing_run: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "k.png").exists()


@pytest.mark.parametrize("args, option, said", [
    (["kernels", "--columns", "0"], "--columns", "must be >= 1, got 0"),
    (["kernels", "--zoom", "two"], "--zoom", "expected an integer, got 'two'"),
    (["neighbors", "--query", "q.jpg", "-k", "0"], "-k/--neighbors", "must be >= 1, got 0"),
    (["neighbors", "--query", "q.jpg", "--max-train", "-1"], "--max-train", "must be >= 0, got -1"),
])
def test_bad_counts_are_usage_errors_naming_the_option(args, option, said, capsys):
    # Before: --zoom 0 reached the model loader first; now the parser refuses it, naming the option, before any work.
    with pytest.raises(SystemExit) as caught:
        visualize.main([*args, "--model", "no/such/run"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {said}" in err, err

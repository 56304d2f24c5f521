"""Tests of alexnet_tf.predict: top-5 equal to the export's serving_default, the run giving the same, image
arguments (files, folders, globs), bad images reported by name while the others are predicted, the figure."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import encode_image, photo
from PIL import Image

from alexnet_tf import cli, predict
from alexnet_tf.core import files
from alexnet_tf.figures import layout
from alexnet_tf.inference.prediction import predict_files
from alexnet_tf.inference.trained import load_model
from alexnet_tf.serving.contract import TOP_K

# The shared session fixtures (tiny data, runs, export), built once for the three evaluation test files.


@pytest.fixture(scope="module")
def images(tmp_path_factory, tiny_run) -> dict[str, str]:
    """Image files of several formats and shapes; one in a folder named after class 2; a corrupt one."""
    from alexnet_tf.data.vocab import Vocabulary

    wnid = Vocabulary.load(os.path.join(tiny_run.path, "classes.tsv")).wnids[2]
    root = tmp_path_factory.mktemp("images")
    (root / "album" / wnid).mkdir(parents=True)
    files = {
        "landscape": (root / "album" / "landscape.jpg", encode_image(photo(90, 140, 1, textured=True), "JPEG")),
        "portrait": (root / "album" / "portrait.png", encode_image(photo(130, 80, 2, textured=True), "PNG")),
        "small": (root / "small.gif", encode_image(photo(40, 50, 3, textured=True), "GIF")),
        "bitmap": (root / "album" / wnid / "bitmap.bmp", encode_image(photo(70, 110, 4, textured=True), "BMP")),
        "corrupt": (root / "album" / "corrupt.jpg", encode_image(photo(60, 60, 5, textured=True), "JPEG")[:40]),
    }
    for path, data in files.values():
        path.write_bytes(data)
    out = {name: str(path) for name, (path, _) in files.items()}
    out.update(root=str(root), album=str(root / "album"), wnid=wnid)
    return out


GOOD = ("landscape", "portrait", "small", "bitmap")


def test_top5_matches_the_exports_serving_default(images, tiny_export, tiny_run) -> None:
    paths = [images[n] for n in GOOD]
    results = predict_files(load_model(tiny_export), paths)
    serving = tf.saved_model.load(tiny_export).signatures["serving_default"]
    expected = serving(image_bytes=tf.constant([open(p, "rb").read() for p in paths]))
    assert [r.path for r in results] == paths and not any(r.error for r in results)
    np.testing.assert_array_equal([r.classes for r in results], expected["top_k_classes"].numpy())
    np.testing.assert_allclose([r.scores for r in results], expected["top_k_scores"].numpy(), rtol=1e-6)
    assert [r.labels for r in results] == [[s.decode() for s in row] for row in expected["top_k_labels"].numpy()]
    assert len(results[0].classes) == 5
    # the run directory the export came from predicts the same
    from_run = predict_files(load_model(tiny_run.path), paths)
    assert [r.classes for r in from_run] == [r.classes for r in results]
    np.testing.assert_allclose([r.scores for r in from_run], [r.scores for r in results], atol=1e-6)
    # the folder named after a class marks the true class
    assert [r.truth for r in results] == [None, None, None, 2]


def test_expand_images_files_folders_globs(images) -> None:
    paths, errors = files.expand_images([images["album"], os.path.join(images["root"], "*.gif"),
                                           images["landscape"], os.path.join(images["root"], "nothing*.png"),
                                           os.path.join(images["root"], "missing.jpg")])
    assert paths == sorted([images[n] for n in ("landscape", "portrait", "bitmap", "corrupt")]) + [images["small"]]
    assert len(errors) == 2
    assert "nothing*.png: no file matches" in errors[0] and "missing.jpg: no such file" in errors[1]


def test_bad_images_are_named_and_the_others_predicted(images, tiny_export, tmp_path, capsys) -> None:
    figure, report = str(tmp_path / "top5.png"), str(tmp_path / "top5.json")
    missing = str(tmp_path / "missing.png")
    status = cli.run(predict.main, [images["landscape"], images["corrupt"], missing, images["small"], images["bitmap"],
                           "--model", tiny_export, "--figure", figure, "--json", report, "--columns", "2"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "corrupt.jpg" in err and "cannot be decoded" in err
    assert "missing.png: no such file" in err
    for name in ("landscape", "small", "bitmap"):
        assert images[name] in out
    written = json.load(open(report))["predictions"]
    by_path = {p["path"]: p for p in written}
    assert by_path[images["corrupt"]]["error"] and not by_path[images["corrupt"]]["top_k"]
    good = [by_path[images[n]] for n in ("landscape", "small", "bitmap")]
    assert all(len(p["top_k"]) == 5 and p["error"] is None for p in good)

    picture = np.asarray(Image.open(figure))
    assert (picture.shape[1], picture.shape[0]) == layout.figure_size(3, 2, TOP_K) == (2 * (layout.TILE + 20),
                                                                                  2 * layout.cell_size(TOP_K)[1])
    # each bar's length is its probability: the bottom pixel row of a bar lies below the label text
    red_bars = 0
    for i, p in enumerate(good):
        x0 = (i % 2) * layout.cell_size(TOP_K)[0] + layout.CELL_PAD
        y0 = (i // 2) * layout.cell_size(TOP_K)[1] + layout.CELL_PAD + layout.TILE + 4 + layout.CAPTION_HEIGHT
        for j, entry in enumerate(p["top_k"]):
            row = picture[y0 + j * (layout.BAR_HEIGHT + layout.BAR_GAP) + layout.BAR_HEIGHT - 1,
                          x0:x0 + layout.TILE]
            # the true class's bar is red, as in the paper; every other bar blue
            colour = layout.TRUE_COLOUR if entry["class"] == p["truth"] else layout.BAR_COLOUR
            filled = int(np.sum(np.all(row == colour, axis=1)))
            assert filled == round(entry["probability"] * layout.TILE)
            red_bars += entry["class"] == p["truth"] and filled > 0
    # the image in the class-named folder has its true class among its five bars: a red bar was really checked
    assert good[2]["truth"] == 2 and red_bars == 1


def test_missing_model_is_a_clear_error(images, tmp_path, capsys) -> None:
    assert cli.run(predict.main, [images["landscape"], "--model", str(tmp_path / "nope")]) == 2
    assert "nope: no such file or directory" in capsys.readouterr().err
    assert cli.run(predict.main, [str(tmp_path / "none*.jpg"), "--model", str(tmp_path)]) == 2
    assert "no image found" in capsys.readouterr().err

"""Tests of the generated demo dataset: layout, determinism, varied sizes, reflection-safe classes."""

import os

import numpy as np
import pytest
from PIL import Image

from alexnet_tf.data.sources import demo
from alexnet_tf.errors import DataError


def listing(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_demo_folder_layout_is_deterministic_and_created_once(tmp_path):
    a = demo.generate_demo(str(tmp_path / "a"), num_classes=3, train_per_class=4, val_per_class=2, seed=5)
    b = demo.generate_demo(str(tmp_path / "b"), num_classes=3, train_per_class=4, val_per_class=2, seed=5)
    files = listing(a)
    assert files == listing(b) and len(files) == 3 * 6 + 1
    vocab = demo.demo_vocabulary(3)
    assert sorted({f.split(os.sep)[1] for f in files if os.sep in f}) == list(vocab.wnids)
    for f in files:
        with open(os.path.join(a, f), "rb") as fa, open(os.path.join(b, f), "rb") as fb:
            assert fa.read() == fb.read(), f
    other = demo.generate_demo(str(tmp_path / "c"), num_classes=3, train_per_class=4, val_per_class=2, seed=6)
    first = files[-1]
    with open(os.path.join(a, first), "rb") as fa, open(os.path.join(other, first), "rb") as fo:
        assert fa.read() != fo.read()
    stamp = os.path.getmtime(os.path.join(a, first))
    assert demo.generate_demo(str(tmp_path / "a"), 3, 4, 2, 5) == a  # second use: the same folder, untouched
    assert os.path.getmtime(os.path.join(a, first)) == stamp
    with Image.open(os.path.join(a, first)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"


def test_demo_images_vary_in_size_and_aspect():
    sizes = [demo.draw_demo_image("ring", np.random.default_rng(i)).size for i in range(40)]
    widths, heights = zip(*sizes)
    assert min(widths + heights) >= demo.MIN_SIDE and max(widths + heights) <= demo.MAX_SIDE
    ratios = [w / h for w, h in sizes]
    assert min(ratios) < 0.8 and max(ratios) > 1.25 and max(widths) - min(widths) > 100


def test_the_shape_is_always_the_lighter_colour():
    # Demo v2: v1 drew either polarity, and the quickstart's net sat at chance for two epochs learning both.
    luminance = np.array([0.299, 0.587, 0.114])
    for i in range(200):
        fg, bg = demo._colour_pair(np.random.default_rng(i))
        assert fg @ luminance - bg @ luminance >= 70, (i, fg, bg)


def test_demo_class_count_limits():
    assert len(demo.demo_vocabulary(demo.MAX_DEMO_CLASSES)) == demo.MAX_DEMO_CLASSES >= 10
    with pytest.raises(DataError, match="demo_classes"):  # a data error, which the commands report as a message
        demo.demo_vocabulary(demo.MAX_DEMO_CLASSES + 1)


@pytest.mark.parametrize("shape", sorted(demo.SHAPES))
def test_a_reflected_shape_is_the_same_shape_rotated(shape):
    """A left-right reflection never makes another class: it equals the same shape at some rotation."""
    mask_fn = demo.SHAPES[shape][1]
    y, x = np.mgrid[-1.2:1.2:64j, -1.2:1.2:64j]
    reflected = mask_fn(-x, y)
    best = 0.0
    for angle in np.deg2rad(np.arange(0, 360, 1.0)):
        u = x * np.cos(angle) + y * np.sin(angle)
        v = -x * np.sin(angle) + y * np.cos(angle)
        rotated = mask_fn(u, v)
        best = max(best, (reflected & rotated).sum() / max((reflected | rotated).sum(), 1))
    assert best > 0.97, best


def test_shapes_differ_from_each_other_in_every_pose():
    """No two classes coincide under rotation (so the labels are learnable from shape alone)."""
    y, x = np.mgrid[-1.2:1.2:48j, -1.2:1.2:48j]
    names = sorted(demo.SHAPES)
    masks = {n: demo.SHAPES[n][1](x, y) for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            best = 0.0
            for angle in np.deg2rad(np.arange(0, 360, 5.0)):
                u = x * np.cos(angle) + y * np.sin(angle)
                v = -x * np.sin(angle) + y * np.cos(angle)
                other = demo.SHAPES[b][1](u, v)
                best = max(best, (masks[a] & other).sum() / max((masks[a] | other).sum(), 1))
            assert best < 0.85, (a, b, best)

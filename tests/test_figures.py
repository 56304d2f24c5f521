"""conv1 kernel grids: layout and the documented per-kernel scaling."""

import numpy as np
import pytest

from alexnet_tf.figures.drawing import conv1_grids, kernel_grid, save_image, scale_kernels
from alexnet_tf.models.alexnet import build_alexnet


def test_each_kernel_scaled_on_its_own_over_its_colours() -> None:
    rng = np.random.default_rng(0)
    k = rng.normal(size=(3, 3, 3, 4)) * np.array([1, 10, 100, 0.01])
    s = scale_kernels(k)
    for i in range(4):
        ref = (k[..., i] - k[..., i].min()) / (k[..., i].max() - k[..., i].min())
        np.testing.assert_allclose(s[..., i], ref)
    assert np.all(scale_kernels(np.ones((2, 2, 3, 1))) == 0.5)


def test_grid_layout() -> None:
    k = np.zeros((2, 2, 3, 5))
    k[0, 0, 0, 3] = 1.0  # kernel 3: red top-left pixel at max, everything else min
    grid = kernel_grid(k, columns=2, pad=1, zoom=1)
    assert grid.shape == (3 * 3 + 1, 2 * 3 + 1, 3)
    # kernel 3 is row 1, column 1 -> its top-left pixel at (1 + 3, 1 + 3)
    np.testing.assert_array_equal(grid[4, 4], [255, 0, 0])
    assert grid[4, 5].tolist() == [0, 0, 0] and grid[0].max() == 0  # padding stays black
    zoomed = kernel_grid(k, columns=2, pad=1, zoom=3)
    np.testing.assert_array_equal(zoomed[::3, ::3], grid)


def test_conv1_grids_one_per_tower(tmp_path) -> None:
    model = build_alexnet(num_classes=4, width=0.125, fc_width=16, input_size=64)
    grids = conv1_grids(model, columns=3, zoom=2)
    assert set(grids) == {"a", "b"}
    assert grids["a"].shape == (2 * (2 * 12 + 1), 2 * (3 * 12 + 1), 3)  # 6 kernels of 11x11: 2 rows of 3
    for t in ("a", "b"):
        np.testing.assert_array_equal(grids[t], kernel_grid(np.asarray(model.get_layer(f"conv1_{t}").kernel),
                                                            columns=3, zoom=2))
    save_image(grids["a"], tmp_path / "a.png")
    from PIL import Image
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), grids["a"])


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        kernel_grid(np.zeros((3, 3, 1, 4)))

"""Figure helpers: the conv1 kernels as image grids, tower A and tower B separately (the paper's Figure 3), image
tiles, fonts and text fitting, and writing a figure as PNG atomically.

Scaling: each kernel is scaled on its own, over its three colour channels together, so that its smallest weight
becomes 0 and its largest 255 (`(w - min) / (max - min)`). A per-kernel scale shows every kernel's pattern even when
their magnitudes differ, and a joint scale over the channels keeps the kernel's colour balance, so a colour-agnostic
kernel looks grey and a colour-specific one looks coloured. A kernel whose weights are all equal is drawn mid-grey.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFont

from alexnet_tf.core.files import output_file
from alexnet_tf.data import preprocess

if TYPE_CHECKING:
    import keras


def scale_kernels(kernels: np.ndarray) -> np.ndarray:
    """Scales each kernel of a conv weight [h, w, channels, n] to [0, 1] on its own (see the module docstring)."""
    k = np.asarray(kernels, dtype=np.float64)
    lo = k.min(axis=(0, 1, 2), keepdims=True)
    span = k.max(axis=(0, 1, 2), keepdims=True) - lo
    flat = span == 0
    return np.where(flat, 0.5, (k - lo) / np.where(flat, 1.0, span))


def kernel_grid(kernels: np.ndarray, columns: int = 8, pad: int = 1, zoom: int = 1) -> np.ndarray:
    """Lays the kernels of a conv weight [h, w, 3, n] out as a uint8 RGB image, row by row.

    Args:
        kernels: The weight, Keras layout (height, width, input channels = 3, kernels).
        columns: Kernels per row (the last row may be partly empty).
        pad: Black pixels between kernels and around the grid, before zooming.
        zoom: Each kernel pixel becomes a zoom x zoom block (11x11 kernels are tiny on screen).

    Returns:
        uint8 [rows * (h + pad) + pad, columns * (w + pad) + pad, 3] times `zoom`.
    """
    kernels = np.asarray(kernels)
    if kernels.ndim != 4 or kernels.shape[2] != 3:
        raise ValueError(f"kernel_grid: expected a conv weight [h, w, 3, n], got shape {kernels.shape}")
    if columns < 1 or pad < 0 or zoom < 1:
        raise ValueError(f"kernel_grid: need columns >= 1, pad >= 0, zoom >= 1; got {columns}, {pad}, {zoom}")
    h, w, _, n = kernels.shape
    scaled = np.round(scale_kernels(kernels) * 255).astype(np.uint8)
    columns = min(columns, n)
    rows = -(-n // columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = scaled[:, :, :, i]
    if zoom > 1:
        grid = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
    return grid


def conv1_grids(model: keras.Model, columns: int = 8, zoom: int = 4) -> dict[str, np.ndarray]:
    """{"a": grid, "b": grid}: the conv1 kernels of tower A and of tower B, each as a `kernel_grid` image; a
    one-tower net (model.towers=one) gives {"one": grid}."""
    names = {layer.name for layer in model.layers}
    layers = {"one": "conv1"} if "conv1" in names else {t: f"conv1_{t}" for t in ("a", "b")}
    return {t: kernel_grid(np.asarray(model.get_layer(name).kernel), columns=columns, zoom=zoom)
            for t, name in layers.items()}


def image_tile(image_bytes: bytes, tile: int) -> np.ndarray:
    """The central square of an encoded image at `tile` pixels, uint8 [tile, tile, 3], decoded as models decode it."""
    return preprocess.eval_square(image_bytes, tile).numpy()


def font(size: int) -> Any:
    """Pillow's built-in scalable font (no font files needed)."""
    return ImageFont.load_default(size=size)


def fit_text(draw: Any, text: str, width: int, text_font: Any) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=text_font) <= width:
        return text
    while text and draw.textlength(text + "…", font=text_font) > width:
        text = text[:-1]
    return text + "…"


def save_image(image: Any, path: str | os.PathLike) -> None:
    """Writes a PIL image or a uint8 RGB array as PNG, atomically (creating its folder; `core.files.output_file`)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, np.uint8))
    with output_file(path) as tmp:
        image.save(tmp, format="PNG")

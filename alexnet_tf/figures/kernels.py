"""The kernels figure: the conv1 kernels of both towers, tower A's block above tower B's (the paper's Figure 3).
Each kernel is scaled on its own to 0-255 over its three colours (`drawing.scale_kernels`); layout:
`figures.layout`."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from alexnet_tf.figures.drawing import fit_text, font, kernel_grid, save_image
from alexnet_tf.figures.layout import HEADING, KERNEL_COLUMNS, KERNEL_ZOOM, kernel_figure_layout


def kernel_figure(kernels: dict[str, np.ndarray], columns: int = KERNEL_COLUMNS, zoom: int = KERNEL_ZOOM,
                  title: str = "") -> np.ndarray:
    """The conv1 kernels of both towers as one uint8 RGB image, laid out as `layout.kernel_figure_layout` says.

    Args:
        kernels: {"a": weight, "b": weight}, each [h, w, 3, n] (Keras layout).
        columns: Kernels per row in each block.
        zoom: Each weight becomes a zoom x zoom square.
        title: Appended to each block's heading (e.g. the model's name).
    """
    blocks = {t: kernel_grid(kernels[t], columns=columns, zoom=zoom) for t in ("a", "b")}
    if blocks["a"].shape != blocks["b"].shape:
        raise ValueError(f"the towers' conv1 weights differ in shape: {kernels['a'].shape} vs {kernels['b'].shape}")
    layout = kernel_figure_layout(blocks["a"].shape[:2])
    canvas = np.zeros((*layout["size"], 3), np.uint8)
    for t in ("a", "b"):
        y, x = layout[t]
        block = blocks[t]
        canvas[y:y + block.shape[0], x:x + block.shape[1]] = block
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    heading_font = font(13)
    for t, place in (("a", "first device"), ("b", "second device")):
        n = kernels[t].shape[-1]
        text = f"tower {t.upper()} ({place}): {n} kernels"
        if title:
            text += f" - {title}"
        draw.text((4, layout[t][0] - HEADING + 3), fit_text(draw, text, layout["size"][1] - 8, heading_font),
                  fill=(255, 255, 255), font=heading_font)
    return np.asarray(image)


def save_kernel_figure(kernels: dict[str, np.ndarray], path: str, columns: int = KERNEL_COLUMNS,
                       zoom: int = KERNEL_ZOOM, title: str = "") -> None:
    """`kernel_figure` written as a PNG at `path`, atomically."""
    save_image(kernel_figure(kernels, columns, zoom, title), path)

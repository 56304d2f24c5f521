"""The predictions figure: images with their top-k bars (bar length = probability), like the paper's Figure 4
(left); the true class's bar is red when the image's folder names it. Layout: `figures.layout`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageDraw

from alexnet_tf.core.files import read_images
from alexnet_tf.figures.drawing import fit_text, font, image_tile, save_image
from alexnet_tf.figures.layout import (
    BACKGROUND,
    BAR_BACKGROUND,
    BAR_COLOUR,
    BAR_GAP,
    BAR_HEIGHT,
    CAPTION_HEIGHT,
    CELL_PAD,
    TEXT_COLOUR,
    TILE,
    TRUE_COLOUR,
    cell_size,
    figure_size,
)

if TYPE_CHECKING:
    from alexnet_tf.inference.prediction import Prediction


def _draw_bars(draw: ImageDraw.ImageDraw, x0: int, y: int, p: Prediction) -> None:
    """One image's top-k bars, the first at height y, each labelled with its class and percentage."""
    bar_font = font(11)
    for c, score, label in zip(p.classes, p.scores, p.labels):
        draw.rectangle([x0, y, x0 + TILE - 1, y + BAR_HEIGHT - 1], fill=BAR_BACKGROUND)
        filled = int(round(score * TILE))
        if filled > 0:
            draw.rectangle([x0, y, x0 + filled - 1, y + BAR_HEIGHT - 1],
                           fill=TRUE_COLOUR if c == p.truth else BAR_COLOUR)
        text = f"{label} {100 * score:.0f}%"
        draw.text((x0 + 3, y + 1), fit_text(draw, text, TILE - 6, bar_font), fill=TEXT_COLOUR, font=bar_font)
        y += BAR_HEIGHT + BAR_GAP


def prediction_figure(tiles: Sequence[np.ndarray], predictions: Sequence[Prediction], columns: int,
                      top_k: int) -> Image.Image:
    """Images with their top-k bars.

    Args:
        tiles: uint8 [TILE, TILE, 3] pictures, one per prediction.
        predictions: Successful predictions, in the same order.
        columns: Cells per row.
        top_k: Bars per image.

    Returns:
        A PIL RGB image of `layout.figure_size(len(tiles), columns, top_k)`.
    """
    figure = Image.new("RGB", figure_size(len(tiles), columns, top_k), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    caption_font = font(13)
    cw, ch = cell_size(top_k)
    columns = max(1, min(columns, len(tiles)))
    for i, (tile, p) in enumerate(zip(tiles, predictions)):
        x0, y0 = (i % columns) * cw + CELL_PAD, (i // columns) * ch + CELL_PAD
        figure.paste(Image.fromarray(np.asarray(tile, np.uint8)), (x0, y0))
        caption = p.truth_label if p.truth_label is not None else os.path.basename(p.path)
        draw.text((x0, y0 + TILE + 4), fit_text(draw, caption, TILE, caption_font), fill=TEXT_COLOUR,
                  font=caption_font)
        _draw_bars(draw, x0, y0 + TILE + 4 + CAPTION_HEIGHT, p)
    return figure


def save_prediction_figure(predictions: Sequence[Prediction], path: str, columns: int, top_k: int) -> None:
    """Draws successful predictions of image files (their files read again for the tiles) as a PNG at `path`."""
    contents, _ = read_images([p.path for p in predictions])
    tiles = [image_tile(contents[p.path], TILE) for p in predictions]
    save_image(prediction_figure(tiles, predictions, columns, top_k), path)

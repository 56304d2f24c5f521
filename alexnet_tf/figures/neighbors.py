"""The neighbours figure: each query image, then the training images nearest to it in fc7 space, nearest first,
each captioned with its class and distance (the paper's Figure 4, right). Layout: `figures.layout`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from alexnet_tf.figures.drawing import fit_text, font, save_image
from alexnet_tf.figures.layout import NEIGHBOR_CAPTION, NEIGHBOR_PAD, NEIGHBOR_TILE, QUERY_GAP, neighbors_figure_size

# One row: (query tile, query caption, [(neighbour tile, class name, distance), ...]).
Row = tuple[np.ndarray, str, Sequence[tuple[np.ndarray, str, float]]]


def neighbors_figure(rows: Sequence[Row], k: int, tile: int = NEIGHBOR_TILE) -> Image.Image:
    """Draws rows of (query tile, query caption, [(neighbour tile, class name, distance), ...]) as a PIL image of
    `layout.neighbors_figure_size(len(rows), k, tile)`."""
    figure = Image.new("RGB", neighbors_figure_size(len(rows), k, tile), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    caption_font = font(11)
    for r, (query, caption, found) in enumerate(rows):
        y = NEIGHBOR_PAD + r * (tile + NEIGHBOR_CAPTION + NEIGHBOR_PAD)
        x = NEIGHBOR_PAD
        figure.paste(Image.fromarray(query), (x, y))
        draw.rectangle([x - 2, y - 2, x + tile + 1, y + tile + 1], outline=(205, 40, 40), width=2)
        draw.text((x, y + tile + 2), fit_text(draw, caption, tile, caption_font), fill=(0, 0, 0), font=caption_font)
        draw.text((x, y + tile + 15), "query", fill=(205, 40, 40), font=caption_font)
        x += tile + NEIGHBOR_PAD + QUERY_GAP
        for image, name, distance in found:
            figure.paste(Image.fromarray(image), (x, y))
            draw.text((x, y + tile + 2), fit_text(draw, name, tile, caption_font), fill=(0, 0, 0), font=caption_font)
            draw.text((x, y + tile + 15), f"d = {distance:.4g}", fill=(90, 90, 90), font=caption_font)
            x += tile + NEIGHBOR_PAD
    return figure


def save_neighbors_figure(rows: Sequence[Row], k: int, path: str) -> None:
    """`neighbors_figure` written as a PNG at `path`, atomically."""
    save_image(neighbors_figure(rows, k), path)

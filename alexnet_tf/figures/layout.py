"""Where things go in the figures, in pixels: plain constants and arithmetic, importable without TensorFlow or
Pillow (the commands' --help shows some of them, and tests check the drawings against them).

predictions (the paper's Figure 4, left): one cell per image, `columns` per row; a cell is the image tile, a
caption line, then one bar per top-k class.

kernels (Figure 3): tower A's conv1 kernels in one block above tower B's, each under a one-line heading. Top to
bottom: heading (HEADING px), block A, GAP px, heading, block B; a block's top-left corner is at x = 0. The figure
is at least MIN_WIDTH wide (the right side padded black).

neighbours (Figure 4, right): one row per query: the query, QUERY_GAP, then its nearest training images, each
captioned with its class and distance.
"""

from __future__ import annotations

from typing import Any

# Predictions.
TILE = 160
CELL_PAD = 10
CAPTION_HEIGHT = 18
BAR_HEIGHT = 16
BAR_GAP = 3
BACKGROUND = (255, 255, 255)
BAR_BACKGROUND = (225, 225, 225)
BAR_COLOUR = (130, 165, 225)
TRUE_COLOUR = (235, 95, 85)  # the paper draws the correct label's bar red
TEXT_COLOUR = (0, 0, 0)

# Kernels.
HEADING = 20
GAP = 12
MIN_WIDTH = 240
KERNEL_COLUMNS = 16  # the paper's Figure 3: 48 kernels per tower in 3 rows of 16
KERNEL_ZOOM = 4

# Neighbours.
NEIGHBOR_TILE = 112
NEIGHBOR_PAD = 6
QUERY_GAP = 14  # extra space between the query and its neighbours
NEIGHBOR_CAPTION = 30  # two caption lines: class, distance
NEIGHBORS = 6  # the paper's Figure 4 shows six training images per query


def cell_size(top_k: int, tile: int = TILE) -> tuple[int, int]:
    """(width, height) of one image's cell in the predictions figure, with `top_k` bars."""
    return (tile + 2 * CELL_PAD,
            CELL_PAD + tile + 4 + CAPTION_HEIGHT + top_k * (BAR_HEIGHT + BAR_GAP) + CELL_PAD)


def figure_size(count: int, columns: int, top_k: int, tile: int = TILE) -> tuple[int, int]:
    """(width, height) of the predictions figure for `count` images, `columns` per row (fewer when there are fewer
    images)."""
    w, h = cell_size(top_k, tile)
    columns = max(1, min(columns, count))
    return columns * w, -(-count // columns) * h


def kernel_figure_layout(block_shape: tuple[int, int]) -> dict[str, Any]:
    """Where things go in the kernel figure for blocks of `block_shape` (height, width): the figure's (height,
    width) and the top-left (y, x) of each tower's block."""
    h, w = block_shape
    return {"size": (2 * (HEADING + h) + GAP, max(w, MIN_WIDTH)),
            "a": (HEADING, 0), "b": (HEADING + h + GAP + HEADING, 0)}


def neighbors_figure_size(queries: int, k: int, tile: int = NEIGHBOR_TILE) -> tuple[int, int]:
    """(width, height) of the neighbour figure: one row per query, the query and k neighbours."""
    width = NEIGHBOR_PAD + (tile + NEIGHBOR_PAD) * (k + 1) + QUERY_GAP
    return width, NEIGHBOR_PAD + queries * (tile + NEIGHBOR_CAPTION + NEIGHBOR_PAD)

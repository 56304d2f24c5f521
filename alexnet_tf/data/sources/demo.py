"""The generated demo dataset: procedurally drawn shapes written as JPEGs in the ImageNet folder layout.

Each class is a shape or structure (a ring, a checkerboard, a plus, ...), drawn with random colours, background,
position, size, rotation, clutter lines and noise, on images whose sides vary from 96 to 320 pixels. Colour alone
never tells two classes apart, every class is left-right symmetric up to rotation (a reflection never turns one
class into another), and the images are deterministic from the seed. The folder is created on first use and is read
by the real folder loader, so the demo exercises the same code as ImageNet.
"""

from __future__ import annotations

import glob
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image, ImageDraw

from alexnet_tf.core.files import remove_stale_temporaries, temp_name
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError

if TYPE_CHECKING:
    from alexnet_tf.config import DataConfig

# Bump when the drawing changes, so cached demo folders of an older version are not reused.
DEMO_VERSION = 2
MIN_SIDE, MAX_SIDE = 80, 224  # v1: 96-320; every image is prepared to a 72-pixel square anyway

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rho, phi = np.hypot(u, v), np.arctan2(v, u)
    tooth = np.abs(((phi / (2 * np.pi / 5)) % 1.0) - 0.5) * 2  # 1 at the points, 0 between them
    return rho <= 0.42 + 0.58 * tooth


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    inside = np.ones(u.shape, bool)
    for k in range(3):  # three half-planes of an equilateral triangle with inradius 0.5
        a = np.pi / 2 + 2 * np.pi * k / 3
        inside &= u * np.cos(a) + v * np.sin(a) <= 0.5
    return inside


# Shape masks over coordinates (u, v) rotated and scaled so that the object spans about [-1, 1].
SHAPES: dict[str, tuple[str, Mask]] = {
    "disk": ("filled disk", lambda u, v: u * u + v * v <= 1.0),
    "ring": ("ring", lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55 ** 2)),
    "square": ("filled square", lambda u, v: (np.abs(u) <= 0.75) & (np.abs(v) <= 0.75)),
    "frame": ("square frame", lambda u, v: (np.maximum(np.abs(u), np.abs(v)) <= 0.85)
              & (np.maximum(np.abs(u), np.abs(v)) >= 0.55)),
    "triangle": ("filled triangle", _triangle),
    "plus": ("plus sign", lambda u, v: ((np.abs(u) <= 0.28) & (np.abs(v) <= 1.0))
             | ((np.abs(v) <= 0.28) & (np.abs(u) <= 1.0))),
    "star": ("five-pointed star", _star),
    "stripes": ("striped disk", lambda u, v: (u * u + v * v <= 1.0) & (np.floor(u * 2.5) % 2 == 0)),
    "checkerboard": ("checkerboard", lambda u, v: (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
                     & ((np.floor(u * 2.5) + np.floor(v * 2.5)) % 2 == 0)),
    "bullseye": ("bullseye", lambda u, v: (np.hypot(u, v) <= 1.0) & (np.floor(np.hypot(u, v) * 3.4) % 2 == 0)),
    "dots": ("3x3 dot grid", lambda u, v: (np.hypot((u + 0.95) % 0.65 - 0.325, (v + 0.95) % 0.65 - 0.325) <= 0.2)
             & (np.abs(u) <= 0.95) & (np.abs(v) <= 0.95)),
    "crescent": ("crescent", lambda u, v: (u * u + v * v <= 1.0) & ((u - 0.5) ** 2 + v * v >= 0.8 ** 2)),
}
MAX_DEMO_CLASSES = len(SHAPES)


def demo_vocabulary(num_classes: int) -> Vocabulary:
    """The first `num_classes` demo classes, in label order (wnid: the folder name; name: a description).

    Raises:
        DataError: for fewer than 2 or more than MAX_DEMO_CLASSES classes (so that the commands report it as a
            data error, not a traceback).
    """
    if not 2 <= num_classes <= MAX_DEMO_CLASSES:
        raise DataError(f"data.demo_classes is {num_classes}; the demo dataset has 2 to {MAX_DEMO_CLASSES} "
                        f"classes ({', '.join(SHAPES)})")
    wnids = sorted(list(SHAPES)[:num_classes])  # sorted: the folder loader numbers classes in sorted order
    return Vocabulary(tuple(wnids), tuple(SHAPES[w][0] for w in wnids))


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random foreground and background colour, the foreground lighter by at least 70 (of 255) of luminance.

    v1 let either be the lighter; a net must then learn each shape in both polarities, and the quickstart's spent
    its first two epochs at chance (docs/training.md)."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        fg, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if fg @ weights - bg @ weights >= 70:
            return fg, bg


def draw_demo_image(shape: str, rng: np.random.Generator) -> Image.Image:
    """One demo image of class `shape`: random size, colours, background, pose, clutter and noise."""
    width, height = (int(s) for s in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    fg, bg = (c.astype(np.float32) for c in _colour_pair(rng))
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    # Background: a flat colour with a random linear gradient.
    direction = (rng.uniform(-1, 1, 2) * rng.uniform(0, 50) / max(width, height)).astype(np.float32)
    gradient = (x - width / 2) * direction[0] + (y - height / 2) * direction[1]
    # Object: radius 30-45 % of the shorter side (v1: 20-45 %), centred so that most of it lies in the central square
    # that preparation keeps (a shape cut away by the centre crop would be a mislabelled example).
    side = min(width, height)
    radius = rng.uniform(0.3, 0.45) * side
    cx = (width - side) / 2 + rng.uniform(radius * 0.8, side - radius * 0.8)
    cy = (height - side) / 2 + rng.uniform(radius * 0.8, side - radius * 0.8)
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = (x - np.float32(cx)) / np.float32(radius), (y - np.float32(cy)) / np.float32(radius)
    u = dx * np.float32(np.cos(angle)) + dy * np.float32(np.sin(angle))
    v = -dx * np.float32(np.sin(angle)) + dy * np.float32(np.cos(angle))
    mask = SHAPES[shape][1](u, v)[..., None]
    shading = rng.normal(0, 10, 3).astype(np.float32) / 2  # a slight gradient across the object
    pixels = np.where(mask, fg + u[..., None] * shading, bg + gradient[..., None])
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * np.float32(rng.uniform(2, 12))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4))):  # clutter: thin lines in random colours
        points = [tuple(float(c) for c in rng.uniform(0, 1, 2) * (width, height)) for _ in range(2)]
        draw.line(points, fill=tuple(int(c) for c in rng.uniform(0, 255, 3)), width=int(rng.integers(1, 3)))
    return image


def demo_dir_name(num_classes: int, train_per_class: int, val_per_class: int, seed: int) -> str:
    """The cache folder name of one demo configuration."""
    return f"demo-v{DEMO_VERSION}-c{num_classes}-t{train_per_class}-v{val_per_class}-s{seed}"


def generate_demo(cache_dir: str, num_classes: int = 10, train_per_class: int = 300, val_per_class: int = 50,
                  seed: int = 1234, progress: bool = False) -> str:
    """Creates the demo folder (train/<class>/*.JPEG, val/<class>/*.JPEG, classes.tsv) unless it exists.

    The images are written into a temporary folder renamed into place at the end, so an interrupted run never
    leaves a partial demo under the final name.

    Returns:
        The demo dataset's folder.
    """
    vocab = demo_vocabulary(num_classes)
    root = os.path.join(cache_dir, demo_dir_name(num_classes, train_per_class, val_per_class, seed))
    if os.path.isdir(root):
        return root
    os.makedirs(cache_dir, exist_ok=True)
    remove_stale_temporaries(cache_dir)  # a generation killed earlier
    tmp = temp_name(root)
    shutil.rmtree(tmp, ignore_errors=True)
    jobs = [(split, label, i) for split, count in (("train", train_per_class), ("val", val_per_class))
            for label in range(num_classes) for i in range(count)]
    bar = progress_bar(len(jobs), "demo dataset", progress)

    def draw_and_save(job: tuple[str, int, int]) -> None:
        split, label, i = job
        wnid = vocab.wnids[label]
        # Each image has its own generator, so an image does not depend on how many others are drawn, or when.
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, label, i])
        draw_demo_image(wnid, rng).save(os.path.join(tmp, split, wnid, f"{wnid}_{i:05d}.JPEG"), "JPEG", quality=90)

    try:
        for split in ("train", "val"):
            for wnid in vocab.wnids:
                os.makedirs(os.path.join(tmp, split, wnid), exist_ok=True)
        # NumPy and PIL release the GIL for most of the work, so threads use every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for _ in pool.map(draw_and_save, jobs):
                bar.update(1)
        vocab.save(os.path.join(tmp, "classes.tsv"))
        try:
            os.rename(tmp, root)
        except OSError:  # another process finished the same demo first: use theirs
            if not os.path.isdir(root):
                raise
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def demo_examples(data_cfg: DataConfig, count: int = 2) -> list[str]:
    """The paths of a few of the demo data's validation images (the first of each class, absolute), for the hints a
    finished quickstart prints; none when the demo data is not in the cache."""
    root = os.path.join(data_cfg.resolved_cache_dir(), "demo", demo_dir_name(
        data_cfg.demo_classes, data_cfg.demo_train_per_class, data_cfg.demo_val_per_class, data_cfg.demo_seed))
    firsts = [sorted(glob.glob(os.path.join(glob.escape(folder), "*.JPEG")))[:1]
              for folder in sorted(glob.glob(os.path.join(glob.escape(root), "val", "*")))]
    return [os.path.abspath(f[0]) for f in firsts if f][:count]

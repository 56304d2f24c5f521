"""Shared test helpers (plain functions; the fixtures are in conftest.py): pictures, small images in every odd and
bad encoding, tiny folders and shards, and tiny run directories written as the trainer writes them.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from PIL import Image

if TYPE_CHECKING:
    from alexnet_tf.config import Config


def photo(height: int, width: int, seed: int = 0, textured: bool = False) -> np.ndarray:
    """A uint8 RGB picture [height, width, 3], the same for the same arguments.

    Args:
        height, width: Its size.
        seed: Which picture.
        textured: False: smooth waves with structure in every channel (JPEG keeps it close, so decoding tests can
            compare pixels). True: gradients, a disc and noise, structure at several scales, so that networks rank
            different pictures stably (prediction and evaluation tests).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    if not textured:
        phases = rng.uniform(0, 6, 3)
        channels = [127 + 100 * np.sin(x / (7 + 3 * c) + y / (11 + c) + phases[c]) for c in range(3)]
        return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)
    image = np.stack([x / width * 255, y / height * 255, np.full_like(x, rng.uniform(0, 255))], axis=-1)
    cy, cx, r = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width, rng.uniform(0.15, 0.35) * min(
        height, width)
    image[(y - cy) ** 2 + (x - cx) ** 2 < r ** 2] = rng.uniform(0, 255, 3)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str, **kwargs) -> bytes:
    """An encoded image file of a PIL image or a uint8 [H, W, 3] array, in a Pillow format (JPEG, PNG, GIF, BMP)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def encode_image(array: np.ndarray, fmt: str) -> bytes:
    """`encode` with the quality the prediction tests use (JPEG 92)."""
    return encode(array, fmt, **({"quality": 92} if fmt == "JPEG" else {}))


def odd_files(seed: int = 0) -> dict[str, bytes]:
    """Files that must decode to RGB (as ILSVRC-2012's odd ones): name -> bytes (every name ends .JPEG)."""
    rgb = Image.fromarray(photo(60, 80, seed))
    return {
        "cmyk.JPEG": encode(rgb.convert("CMYK"), "JPEG", quality=95),
        "grey.JPEG": encode(rgb.convert("L"), "JPEG", quality=95),
        "png_named.JPEG": encode(rgb, "PNG"),
        "rgba_png.JPEG": encode(rgb.convert("RGBA"), "PNG"),
        "gif.JPEG": encode(rgb.convert("P"), "GIF"),
    }


def bad_files(seed: int = 0) -> dict[str, bytes]:
    """Files that cannot be decoded: name -> bytes."""
    good = encode(Image.fromarray(photo(60, 80, seed)), "JPEG", quality=95)
    corrupt = bytearray(good)
    start = good.index(b"\xff\xc0")  # the frame header: declare 0 components
    corrupt[start + 9] = 0
    return {
        "truncated.JPEG": good[: len(good) // 2],
        "corrupt.JPEG": bytes(corrupt),
        "empty.JPEG": b"",
        "text.JPEG": b"this is not an image, just some text\n",
    }


def _lzw_of_zeros(pixels: int, min_code_size: int = 2) -> bytes:
    """GIF LZW data of `pixels` pixels of palette index 0, written by hand (Pillow cannot make the files below).

    After a clear code, code 0 is one pixel and each new code one pixel longer than the last, so a full table covers
    about 8.4 million pixels in 6 KB: a 10,000 x 10,000 frame takes 70 KB, as the decompression bombs do.
    """
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    out, acc, bits = bytearray(), 0, 0

    def emit(code: int, size: int) -> None:
        nonlocal acc, bits
        acc, bits = acc | code << bits, bits + size
        while bits >= 8:
            out.append(acc & 0xFF)
            acc, bits = acc >> 8, bits - 8

    size = min_code_size + 1
    emit(clear, size)
    left = pixels
    while left:
        size, next_code, run = min_code_size + 1, end + 2, 1  # emitting code 0 added the entry end + 1
        emit(0, size)
        left -= 1
        while left and next_code < 4096:
            take = min(run + 1, left)
            emit(0 if take == 1 else end + take - 1, size)
            left, next_code, run = left - take, next_code + 1, run + 1
            if next_code > (1 << size) and size < 12:
                size += 1
        if left:
            emit(clear, size)
    emit(end, size)
    if bits:
        out.append(acc & 0xFF)
    return bytes(out)


def crafted_gif(screen: tuple[int, int], frames: list[tuple[int, int]], encoded_pixels: int | None = None) -> bytes:
    """A GIF with a logical screen of `screen` (width, height) holding `frames` of (width, height), each all one colour.

    A frame's size is independent of the screen's, as the format allows; `encoded_pixels` writes only that many
    pixels of each frame's data (a truncated frame) instead of all of them.
    """
    palette = bytes([0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255])
    data = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x81, 0, 0) + palette
    for w, h in frames:
        lzw = _lzw_of_zeros(w * h if encoded_pixels is None else encoded_pixels)
        blocks = b"".join(bytes([len(lzw[i:i + 255])]) + lzw[i:i + 255] for i in range(0, len(lzw), 255))
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02" + blocks + b"\x00"
    return data + b"\x3b"


def write_folder(root: str, classes: dict[str, int], val_per_class: int = 2, size: tuple[int, int] = (60, 80),
                 extra_train: dict[str, dict[str, bytes]] | None = None) -> str:
    """An ImageNet-style folder with `classes` (wnid -> training images) of good JPEGs, plus extra files.
    With val_per_class=0 the validation folder is left empty (for a flat one)."""
    for split, counts in (("train", classes), ("val", {w: val_per_class for w in classes})):
        for c, (wnid, n) in enumerate(counts.items()):
            folder = os.path.join(root, split, wnid)
            if n:
                os.makedirs(folder, exist_ok=True)
            for i in range(n):
                seed = 1000 * c + i + (500 if split == "val" else 0)
                with open(os.path.join(folder, f"{wnid}_{i}.JPEG"), "wb") as f:
                    f.write(encode(Image.fromarray(photo(*size, seed)), "JPEG", quality=95))
    for wnid, files in (extra_train or {}).items():
        for name, data in files.items():
            with open(os.path.join(root, "train", wnid, name), "wb") as f:
                f.write(data)
    return root


def example(image_bytes: bytes | None, label: int | None = None, synset: str | None = None,
            filename: str = "") -> bytes:
    """A serialised record in the common ImageNet TFRecord format."""
    feature = {}
    if image_bytes is not None:
        feature["image/encoded"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes]))
    if label is not None:
        feature["image/class/label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    if synset is not None:
        feature["image/class/synset"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[synset.encode()]))
    if filename:
        feature["image/filename"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path: str, records: list[bytes]) -> str:
    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r)
    return path


def read_shards(files) -> list[dict]:
    """Every record of prepared shards as {"image": uint8 array, "label": int, "synset": str, "filename": str}."""
    out = []
    for r in tf.data.TFRecordDataset(list(files)):
        ex = tf.train.Example.FromString(r.numpy()).features.feature
        out.append({"image": tf.io.decode_jpeg(ex["image/encoded"].bytes_list.value[0], channels=3).numpy(),
                    "jpeg": ex["image/encoded"].bytes_list.value[0],
                    "label": ex["image/class/label"].int64_list.value[0],
                    "synset": ex["image/class/synset"].bytes_list.value[0].decode(),
                    "filename": ex["image/filename"].bytes_list.value[0].decode()})
    return out


# Damage to a checkpoint, as a disk or a careless user does it ----------------------------------

def data_file(prefix: str) -> str:
    return prefix + ".data-00000-of-00001"


def truncate_data(prefix: str) -> str:
    path = data_file(prefix)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    return path


def overwrite_data(prefix: str) -> str:
    """Overwrites up to 4 KiB in the middle of the data file with other bytes (the size stays the same)."""
    path = data_file(prefix)
    size = os.path.getsize(path)
    start, length = size // 4, min(4096, size // 2)
    with open(path, "r+b") as f:
        f.seek(start)
        old = f.read(length)
        f.seek(start)
        f.write(bytes(b ^ 0x5A for b in old))
    return path


def truncate_index(prefix: str) -> str:
    path = prefix + ".index"
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    return path


DAMAGE = {"data truncated": truncate_data, "data overwritten": overwrite_data, "index truncated": truncate_index}


# Tiny runs for the evaluation, prediction and visualisation tests (8 classes, so that top-5 means something).

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "alexnet_tf", "configs", "tiny.yaml")  # the whole program in seconds
NUM_CLASSES = 8


@dataclass
class TinyRun:
    """A run directory and the weights its checkpoint holds (by variable path, e.g. 'conv1_a/kernel')."""

    path: str
    config: "Config"
    weights: dict[str, np.ndarray]


def tiny_config(cache_dir: str) -> "Config":
    """configs/tiny.yaml with 8 demo classes of 4 training and 3 validation images, cached under `cache_dir`."""
    from alexnet_tf.config import load_config, replace

    return replace(load_config(TINY),
                   model={"num_classes": NUM_CLASSES},
                   data={"demo_classes": NUM_CLASSES, "demo_train_per_class": 4, "demo_val_per_class": 3,
                         "cache_dir": cache_dir, "shard_size": 8})


def make_run(run_dir: str, config: "Config", prepared, seed: int) -> TinyRun:
    """Writes a run directory as the trainer does, with He-scaled random weights (the paper's N(0, 0.01^2) gives
    near-uniform outputs in a tiny untrained net, which would hide ranking mistakes)."""
    from alexnet_tf.models.alexnet import build_alexnet
    from alexnet_tf.runs.rundir import RunDir

    model = build_alexnet(**asdict(config.model), input_size=config.data.crop_size)
    rng = np.random.default_rng(seed)
    weights = {}
    for variable in model.weights:
        fan_in = int(np.prod(variable.shape[:-1])) if len(variable.shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(variable.shape) > 1 else 0.1
        value = rng.normal(0, scale, variable.shape).astype(np.float32)
        variable.assign(value)
        weights[variable.path] = value
    os.makedirs(run_dir)
    directory = RunDir(run_dir)
    directory.write_files(config, prepared.stats_path, prepared.vocab_path)
    directory.save_weights(model, step=3)
    return TinyRun(run_dir, config, weights)

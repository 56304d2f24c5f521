"""Shared fixtures of test_evaluate, test_predict and test_visualize: tiny prepared data with 8 classes (so that
top-5 means something), two tiny run directories written as the trainer writes them, and an export of the first.

Session-scoped, so the three test files together build them once: each test module loads this file as a plugin,
`pytest_plugins = ("evaluate_fixtures",)` (importing the fixtures by name would make one copy per module).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.config import Config, load_config, replace
from alexnet_tf.model import build_alexnet
from alexnet_tf.rundir import RunDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 8


@dataclass
class TinyRun:
    """A run directory and the weights its checkpoint holds (by variable path, e.g. 'conv1_a/kernel')."""

    path: str
    config: Config
    weights: dict[str, np.ndarray]


def tiny_config(cache_dir: str) -> Config:
    """configs/tiny.yaml with 8 demo classes of 4 training and 3 validation images, cached under `cache_dir`."""
    return replace(load_config(os.path.join(ROOT, "configs", "tiny.yaml")),
                   model={"num_classes": NUM_CLASSES},
                   data={"demo_classes": NUM_CLASSES, "demo_train_per_class": 4, "demo_val_per_class": 3,
                         "cache_dir": cache_dir, "shard_size": 8})


def make_run(run_dir: str, config: Config, prepared, seed: int) -> TinyRun:
    """Writes a run directory as the trainer does, with He-scaled random weights (the paper's N(0, 0.01^2) gives
    near-uniform outputs in a tiny untrained net, which would hide ranking mistakes)."""
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


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("evaluate"))


@pytest.fixture(scope="session")
def tiny_data(tiny_root: str):
    """(config, prepared data) of the tiny demo."""
    from alexnet_tf.data import prepare_data

    config = tiny_config(os.path.join(tiny_root, "cache"))
    return config, prepare_data(config.data, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tiny_root: str, tiny_data) -> TinyRun:
    config, prepared = tiny_data
    return make_run(os.path.join(tiny_root, "run_a"), config, prepared, seed=1)


@pytest.fixture(scope="session")
def tiny_run_b(tiny_root: str, tiny_data) -> TinyRun:
    config, prepared = tiny_data
    return make_run(os.path.join(tiny_root, "run_b"), config, prepared, seed=2)


@pytest.fixture(scope="session")
def tiny_export(tiny_root: str, tiny_run: TinyRun) -> str:
    """tiny_run exported outside its run directory (so only the export's own files describe it)."""
    from alexnet_tf.savedmodel import export_run

    return export_run(tiny_run.path, os.path.join(tiny_root, "exports", "alexnet"), progress=False)


def encode_image(array: np.ndarray, fmt: str) -> bytes:
    """An encoded image file of `array` (uint8 [H, W, 3]) in a Pillow format (JPEG, PNG, GIF, BMP)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """A picture with structure at several scales (gradients, a disc, noise), so that networks rank it stably."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width * 255, y / height * 255, np.full_like(x, rng.uniform(0, 255))], axis=-1)
    cy, cx, r = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width, rng.uniform(0.15, 0.35) * min(
        height, width)
    image[(y - cy) ** 2 + (x - cx) ** 2 < r ** 2] = rng.uniform(0, 255, 3)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)

"""Sources of labelled encoded images, one module per kind, and `open_source`, which picks one by data.source.

- `folder.py`: an ImageNet-style folder (a path), with its validation labels files;
- `tfrecord.py`: TFRecord shards in the common ImageNet format ("tfrecord:PATH");
- `tfds.py`: a tensorflow-datasets dataset ("tfds:NAME");
- `demo.py`: the generated demo dataset ("demo"), drawn into a folder and read as one;
- `fashion_mnist.py`: Zalando's Fashion-MNIST IDX files ("fashion_mnist" or "fashion_mnist:PATH").

`base.py` holds what each of them gives: a `Source` with a `SplitSource` per split. A new kind is a module here that
returns a `Source`, and one branch in `open_source`.
"""

from __future__ import annotations

import glob
import hashlib
import os

from alexnet_tf.config import DataConfig
from alexnet_tf.data.prepared import is_prepared_dir
from alexnet_tf.data.sources import fashion_mnist
from alexnet_tf.data.sources.base import Source
from alexnet_tf.data.sources.demo import generate_demo
from alexnet_tf.data.sources.folder import folder_source
from alexnet_tf.data.sources.tfds import tfds_source
from alexnet_tf.data.sources.tfrecord import tfrecord_source
from alexnet_tf.errors import DataError


def _slug(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    base = "".join(c if c.isalnum() else "_" for c in os.path.basename(text.rstrip("/")) or "root")[:40]
    return f"{base}-{digest}"


def open_source(data_cfg: DataConfig, progress: bool = True) -> tuple[Source | None, str]:
    """The source named by data.source and the folder it is prepared into; (None, folder) when data.source
    names already-prepared shards of ours (tfrecord:PATH of a prepared folder)."""
    spec = data_cfg.source
    cache = data_cfg.resolved_cache_dir()
    if (data_cfg.holdout or data_cfg.train_images) and not fashion_mnist.is_fashion_mnist(spec):
        raise DataError(f"data.holdout and data.train_images apply to data.source=fashion_mnist only, not {spec!r}; "
                        "set them to 0")
    if spec == "demo":
        root = generate_demo(os.path.join(cache, "demo"), data_cfg.demo_classes, data_cfg.demo_train_per_class,
                             data_cfg.demo_val_per_class, data_cfg.demo_seed, progress=progress)
        default_dir = os.path.join(cache, "prepared", f"{os.path.basename(root)}-s{data_cfg.image_size}")
        return folder_source(root, "train", "val"), data_cfg.prepared_dir or default_dir
    if fashion_mnist.is_fashion_mnist(spec):
        default_dir = os.path.join(cache, "prepared", fashion_mnist.prepared_name(
            spec, data_cfg.holdout, data_cfg.train_images, data_cfg.image_size))
        return (fashion_mnist.fashion_mnist_source(spec, data_cfg.holdout, data_cfg.train_images),
                data_cfg.prepared_dir or default_dir)
    if spec.startswith("tfrecord:"):
        path = os.path.abspath(os.path.expanduser(spec[len("tfrecord:"):]))
        if os.path.isdir(path) and is_prepared_dir(path):
            return None, path
        if not glob.glob(path):
            raise DataError(f"data.source {spec!r}: {path!r} does not exist")
        default_dir = os.path.join(cache, "prepared", f"tfrecord-{_slug(path)}-s{data_cfg.image_size}")
        return tfrecord_source(path), data_cfg.prepared_dir or default_dir
    if spec.startswith("tfds:"):
        name = spec[len("tfds:"):]
        default_dir = os.path.join(cache, "prepared",
                                   f"tfds-{_slug(name + '|' + data_cfg.tfds_data_dir)}-s{data_cfg.image_size}")
        return (tfds_source(name, data_cfg.tfds_data_dir, data_cfg.tfds_manual_dir, data_cfg.val_split,
                            data_cfg.train_split), data_cfg.prepared_dir or default_dir)
    root = os.path.abspath(os.path.expanduser(spec))
    default_dir = os.path.join(cache, "prepared", f"folder-{_slug(root)}-s{data_cfg.image_size}")
    return (folder_source(root, data_cfg.train_split, data_cfg.val_split, data_cfg.val_labels),
            data_cfg.prepared_dir or default_dir)

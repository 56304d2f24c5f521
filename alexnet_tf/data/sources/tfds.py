"""Any tensorflow-datasets image-classification dataset as a source, read as encoded bytes (tfds decodes nothing)."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from alexnet_tf.data.sources.base import Source, SplitSource, digest
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError, error_summary


def tfds_source(name: str, data_dir: str = "", manual_dir: str = "", val_split: str = "val",
                train_split: str = "train", download: bool = True) -> Source:
    """Any tensorflow-datasets image-classification dataset, read as encoded bytes (no decoding by tfds).

    The dataset is built with tfds' own `download_and_prepare` when missing (imagenet2012 needs its tar files in
    `manual_dir`). The validation split is `val_split`, or "validation" / "test" when the dataset has no split of
    that name.

    Raises:
        DataError: when tfds cannot find or build the dataset, or it has no image or class-label feature.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # tfds raises several kinds for unknown names
        raise DataError(f"tensorflow-datasets has no dataset {name!r} ({error_summary(e)}); "
                        "check data.source=tfds:NAME") from None
    if not builder.is_prepared():
        if not download:
            raise DataError(f"tfds dataset {name!r} is not prepared in {builder.data_dir}")
        config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:
            raise DataError(f"tensorflow-datasets could not build {name!r}: {error_summary(e)} (for imagenet2012 put "
                            "the tar files in data.tfds_manual_dir)") from None
    features = builder.info.features
    image_key = label_key = None
    if builder.info.supervised_keys:
        image_key, label_key = builder.info.supervised_keys[:2]
    if image_key is None:
        image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
        label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
    if image_key is None or label_key is None or not isinstance(features[label_key], tfds.features.ClassLabel):
        raise DataError(f"tfds dataset {name!r} is not an image-classification dataset (features: {list(features)})")
    names = list(features[label_key].names)
    vocab = Vocabulary.from_wnids(names)
    splits = builder.info.splits
    chosen = {"train": train_split}
    chosen["val"] = next((s for s in (val_split, "validation", "test") if s in splits), None)
    if chosen["val"] is None or train_split not in splits:
        raise DataError(f"tfds dataset {name!r} has splits {sorted(splits)}; it needs {train_split!r} and "
                        f"{val_split!r} (or 'validation'/'test')")
    source = Source(f"tfds {name}", vocab)
    for ours, theirs in chosen.items():
        source.splits[ours] = _tfds_split(builder, name, theirs, image_key, label_key)
    return source


def _tfds_split(builder, name: str, split: str, image_key: str, label_key: str) -> SplitSource:
    import tensorflow_datasets as tfds

    count = builder.info.splits[split].num_examples

    def records(skip: Callable[[int], bool]) -> tf.data.Dataset:
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={image_key: tfds.decode.SkipDecoding()}).enumerate()
        ds = ds.filter(lambda i, ex: tf.logical_not(tf.numpy_function(lambda j: bool(skip(int(j))), [i], tf.bool,
                                                                      stateful=False)))
        return ds.map(lambda i, ex: (i, ex[image_key], tf.cast(ex[label_key], tf.int64)))

    fingerprint = digest([name, split, str(builder.info.version), str(count), builder.data_dir])
    return SplitSource(count, fingerprint, records, lambda i: f"tfds:{name} {split} record {i}")

"""The tf.data input pipelines over prepared shards: training batches (uint8 work and random draws) and
evaluation batches (centre crop or ten crops, mean subtracted)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from alexnet_tf.config import DataConfig
from alexnet_tf.data import augment, preprocess, service
from alexnet_tf.data.prepared import PreparedData
from alexnet_tf.errors import DataError

_TRAIN_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}


def parse_record(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A serialised prepared record -> (encoded JPEG square string, label int32)."""
    ex = tf.io.parse_single_example(record, _TRAIN_FEATURES)
    return ex["image/encoded"], tf.cast(ex["image/class/label"], tf.int32)


def record_dataset(prepared: PreparedData, split: str = "val") -> tf.data.Dataset:
    """The prepared records of "train" or "val" in file order, as (encoded JPEG square, label int32)."""
    return tf.data.TFRecordDataset(list(prepared.files(split))).map(parse_record)


def _derived_seed(*parts: int) -> int:
    """A 31-bit seed for tf.data's shuffles, from (run seed, epoch, purpose)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


def _options(num_threads: int) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    if num_threads:
        options.threading.private_threadpool_size = num_threads
    return options


def train_dataset(prepared: PreparedData, data_cfg: DataConfig, batch_size: int, seed: int, epoch: int,
                  drop_remainder: bool = True, num_threads: int = 0, deterministic: bool = False) -> tf.data.Dataset:
    """One epoch of augmented training batches.

    Per image, in tf.data: a stateless seed from (seed, epoch, position in the epoch), from which the crop offset,
    the reflection flag and the lighting alphas are drawn; a fused decode-and-crop of the JPEG; the reflection.
    The float part (lighting, mean) is `augment.network_input`, for the train step. Encoded records are
    shuffled (shards in a seeded order, then a buffer of data.shuffle_buffer records), never decoded images.

    Args:
        prepared: From `prepare_data`.
        data_cfg: Uses crop_size, flip, pca_std, shuffle_buffer, and the switches augment (off: the centre crop,
            never reflected) and lighting (off: no PCA lighting).
        batch_size: Images per batch.
        seed: The run's seed; the same (seed, epoch) gives the same batches.
        epoch: The epoch number (0-based); each epoch draws new crops and a new order.
        drop_remainder: Leave out the last, smaller batch.
        num_threads: A private tf.data thread pool of this size (0: TF's shared pool).
        deterministic: With data.service: static sharding and the local order (`service.served_batches`).

    Returns:
        A dataset of (batch, labels): batch = {"image": uint8 [B, crop, crop, 3], "offset": int32 [B, 2],
        "flip": bool [B], "alpha": float32 [B, 3]}, labels int32 [B]. Iterating it raises one of
        `data.prepared.READ_ERRORS` when a shard was damaged or removed after `load_prepared` checked it; the
        error names no file: raise `data.prepared.read_error(prepared, e) from e` instead.
    """
    size, crop = prepared.image_size, data_cfg.crop_size
    if drop_remainder and prepared.num_train < batch_size:
        raise DataError(f"the training split has {prepared.num_train} images, fewer than one batch of {batch_size}; "
                        "lower train.batch_size or add images")
    files = list(prepared.train_files)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=_derived_seed(seed, epoch, 1), reshuffle_each_iteration=False)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(16, len(files)), block_length=1,
                       num_parallel_calls=min(4, len(files)), deterministic=True)
    ds = ds.shuffle(data_cfg.shuffle_buffer, seed=_derived_seed(seed, epoch, 2), reshuffle_each_iteration=False)
    ds = ds.enumerate()

    def element(index: tf.Tensor, record: tf.Tensor):
        encoded, label = parse_record(record)
        draws = augment.draw_augmentation(augment.element_seed(seed, epoch, index), size, crop,
                                          data_cfg.flip and data_cfg.augment,
                                          data_cfg.pca_std if data_cfg.lighting else 0.0, data_cfg.augment)
        image = augment.reflect(augment.decode_and_crop(encoded, draws["offset"], crop), draws["flip"])
        return {"image": image, **draws}, label

    if data_cfg.service:  # decoding and augmenting on the tf.data service's workers
        ds = service.served_batches(ds, element, batch_size, drop_remainder, data_cfg.service, deterministic)
    else:
        ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(num_threads))


def eval_dataset(prepared: PreparedData, data_cfg: DataConfig, batch_size: int, split: str = "val",
                 ten_crop: bool = False, num_threads: int = 0) -> tf.data.Dataset:
    """Evaluation batches in file order: each prepared square minus the training mean, then cropped, with the
    very functions the export uses (`preprocess.subtract_mean`, `center_crop`, `ten_crop`).

    Args:
        prepared: From `prepare_data`.
        data_cfg: Uses crop_size and mean ("image": the mean image; "channel": the per-channel mean).
        batch_size: Images per batch (the last batch may be smaller).
        split: "val" or "train".
        ten_crop: Ten crops per image (`preprocess.TEN_CROP_ORDER`) instead of the centre crop.
        num_threads: A private tf.data thread pool of this size (0: TF's shared pool).

    Returns:
        A dataset of (images, labels): images float32 [B, crop, crop, 3], or [B, 10, crop, crop, 3] with
        `ten_crop`; labels int32 [B]. Damaged shards: as for `train_dataset`.
    """
    crop, size = data_cfg.crop_size, prepared.image_size
    stats = prepared.stats
    mean = tf.constant(stats.mean_image if data_cfg.mean == "image" else stats.channel_mean, tf.float32)

    def element(encoded: tf.Tensor, label: tf.Tensor):
        square = preprocess.decode_rgb(encoded)
        square.set_shape([size, size, 3])
        centred = preprocess.subtract_mean(square, mean)
        images = preprocess.ten_crop(centred, crop) if ten_crop else preprocess.center_crop(centred, crop)
        return images, label

    ds = record_dataset(prepared, split).map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(_options(num_threads))


def run_batches(prepared: PreparedData, data_cfg: DataConfig, batch_size: int, seed: int, epochs: range,
                skip: int = 0, deterministic: bool = False) -> tf.data.Dataset:
    """The training batches of several epochs one after another, for one iterator over them all.

    Epoch e holds exactly the first num_train // batch_size batches of `train_dataset(..., epoch=e)`, so a run read
    this way sees the batches it would see epoch by epoch, and a resumed run (`skip` batches of the first epoch
    already taken) the same as one never stopped. One iterator means no iterator is torn down and built between
    epochs: the next epoch's shuffle buffer fills and its first batches are prepared in the background (the final
    prefetch), while the trainer evaluates.

    Args:
        prepared, data_cfg, batch_size, seed, deterministic: As for `train_dataset`.
        epochs: The epoch numbers, in order (non-empty).
        skip: Batches of the first epoch to leave out.
    """
    steps = prepared.num_train // batch_size
    parts = [train_dataset(prepared, data_cfg, batch_size, seed, epoch, deterministic=deterministic).take(steps)
             for epoch in epochs]
    batches = parts[0].skip(skip)
    for part in parts[1:]:
        batches = batches.concatenate(part)
    return batches.prefetch(tf.data.AUTOTUNE)

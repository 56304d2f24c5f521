"""Tests of the training and evaluation pipelines over prepared shards, and of prepare -> model end to end."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import read_shards, write_folder

from alexnet_tf.config import DataConfig
from alexnet_tf.data import eval_dataset, prepare_data, record_dataset, run_batches, train_dataset
from alexnet_tf.data.augment import network_input
from alexnet_tf.data.prepared import READ_ERRORS, read_error
from alexnet_tf.errors import DataError
from alexnet_tf.models.alexnet import build_alexnet


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    root = write_folder(str(tmp / "src"), {"n01": 7, "n02": 6, "n03": 5}, val_per_class=2, size=(40, 52))
    cfg = DataConfig(source=root, cache_dir=str(tmp / "cache"), image_size=32, crop_size=24, shard_size=5,
                     shuffle_buffer=8)
    return cfg, prepare_data(cfg, progress=False)


def batches(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def test_same_seed_same_batches_other_epochs_other_crops(prepared):
    cfg, data = prepared
    first = batches(train_dataset(data, cfg, 4, seed=7, epoch=0))
    again = batches(train_dataset(data, cfg, 4, seed=7, epoch=0))
    assert len(first) == data.num_train // 4
    for (a, ya), (b, yb) in zip(first, again):
        assert np.array_equal(ya, yb)
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    later = batches(train_dataset(data, cfg, 4, seed=7, epoch=1))
    offsets = lambda bs: np.concatenate([b["offset"] for b, _ in bs])  # noqa: E731
    assert not np.array_equal(offsets(first), offsets(later))
    with pytest.raises(DataError, match="fewer than one batch"):
        train_dataset(data, cfg, data.num_train + 1, seed=7, epoch=0)
    other_seed = batches(train_dataset(data, cfg, 4, seed=8, epoch=0))
    assert not np.array_equal(offsets(first), offsets(other_seed))
    # Resuming mid-epoch: skipping the batches already used gives the same remaining batches.
    resumed = batches(train_dataset(data, cfg, 4, seed=7, epoch=0).skip(2))
    assert all(np.array_equal(a["image"], b["image"]) for (a, _), (b, _) in zip(first[2:], resumed))


def test_a_runs_batches_are_its_epochs_batches_one_after_another(prepared):
    # One iterator for several epochs (the trainer's): epoch by epoch the same batches, a resume's skip included.
    cfg, data = prepared
    expected = [batch for epoch in (3, 4, 5) for batch in batches(train_dataset(data, cfg, 4, seed=7, epoch=epoch))]
    steps = data.num_train // 4
    for skip in (0, 2):
        got = batches(run_batches(data, cfg, 4, seed=7, epochs=range(3, 6), skip=skip))
        assert len(got) == 3 * steps - skip
        for (a, ya), (b, yb) in zip(expected[skip:], got):
            assert np.array_equal(ya, yb)
            for key in a:
                assert np.array_equal(a[key], b[key]), key


def test_training_batches_are_exact_crops_and_reflections_of_the_shards(prepared):
    cfg, data = prepared
    squares = {}
    for r in read_shards(data.train_files):
        squares.setdefault(r["label"], []).append(r["image"])
    seen_flip = {True: 0, False: 0}
    for batch, labels in batches(train_dataset(data, cfg, 6, seed=3, epoch=0)):
        assert batch["image"].dtype == np.uint8 and batch["image"].shape == (6, 24, 24, 3)
        for image, (t, x), flip, label in zip(batch["image"], batch["offset"], batch["flip"], labels):
            assert 0 <= t <= 8 and 0 <= x <= 8
            candidates = [sq[t:t + 24, x:x + 24] for sq in squares[label]]
            candidates = [c[:, ::-1] if flip else c for c in candidates]
            assert any(np.array_equal(image, c) for c in candidates)  # exact pixels of a square of its class
            seen_flip[bool(flip)] += 1
    assert seen_flip[True] and seen_flip[False]
    # Every training image appears once per epoch (encoded records shuffled, none lost or repeated).
    all_labels = np.concatenate([y for _, y in batches(train_dataset(data, cfg, 1, seed=3, epoch=0))])
    assert sorted(all_labels.tolist()) == sorted(r["label"] for r in read_shards(data.train_files))


def test_flip_and_lighting_options(prepared):
    cfg, data = prepared
    plain = dataclasses.replace(cfg, flip=False, pca_std=0.0)
    batch, _ = next(iter(train_dataset(data, plain, 6, seed=0, epoch=0)))
    assert not batch["flip"].numpy().any() and not batch["alpha"].numpy().any()
    x = network_input(batch, data.stats, "channel").numpy()
    np.testing.assert_allclose(x, batch["image"].numpy() - data.stats.channel_mean, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("mean_kind", ["image", "channel"])
def test_eval_batches_are_mean_subtracted_centre_and_ten_crops(prepared, mean_kind):
    cfg, data = prepared
    cfg = dataclasses.replace(cfg, mean=mean_kind)
    records = read_shards(data.val_files)
    mean = data.stats.mean_image if mean_kind == "image" else data.stats.channel_mean
    centre = np.concatenate([x for x, _ in batches(eval_dataset(data, cfg, 3))])
    ten, labels = zip(*batches(eval_dataset(data, cfg, 3, ten_crop=True)))
    ten = np.concatenate(ten)
    assert centre.shape == (data.num_val, 24, 24, 3) and ten.shape == (data.num_val, 10, 24, 24, 3)
    assert np.concatenate(labels).tolist() == [r["label"] for r in records]
    for k, r in enumerate(records):
        centred = r["image"].astype(np.float32) - mean
        np.testing.assert_allclose(centre[k], centred[4:28, 4:28], atol=1e-4)
        np.testing.assert_allclose(ten[k, 1], centred[:24, :24], atol=1e-4)  # top-left
        np.testing.assert_allclose(ten[k, 9], centred[8:, 8:][:, ::-1], atol=1e-4)  # bottom-right reflected
    train_eval = next(iter(eval_dataset(data, cfg, 2, split="train")))[0]
    assert train_eval.shape == (2, 24, 24, 3)
    raw = [(e.numpy(), int(y)) for e, y in record_dataset(data, "val")]
    assert raw == [(r["jpeg"], r["label"]) for r in records]


def test_demo_prepare_pipeline_model_end_to_end(tmp_path):
    cfg = DataConfig(source="demo", cache_dir=str(tmp_path), image_size=72, crop_size=64, shard_size=16,
                     shuffle_buffer=32, demo_classes=4, demo_train_per_class=8, demo_val_per_class=2)
    data = prepare_data(cfg, progress=False)
    assert data.num_train == 32 and data.num_val == 8 and len(data.vocabulary) == 4
    model = build_alexnet(num_classes=4, width=0.125, fc_width=16, input_size=64)
    optimizer = tf.keras.optimizers.SGD(0.01)

    @tf.function
    def step(batch, labels):
        with tf.GradientTape() as tape:
            logits = model(network_input(batch, data.stats, cfg.mean, cfg.pca_scale), training=True)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    losses = [float(step(b, y)) for b, y in train_dataset(data, cfg, 8, seed=0, epoch=0)]
    assert len(losses) == 4 and np.isfinite(losses).all()
    images, labels = next(iter(eval_dataset(data, cfg, 8, ten_crop=True)))
    logits = model(tf.reshape(images, [-1, 64, 64, 3]))
    assert logits.shape == (80, 4) and np.isfinite(logits.numpy()).all()


# ---------------------------------------------------------------------------------------------------------------------
# A shard damaged after training started: tf.data names no file; `read_error` does.

@pytest.fixture
def own_prepared(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 6, "n02": 6}, val_per_class=2)
    cfg = DataConfig(source=root, prepared_dir=str(tmp_path / "p"), image_size=32, crop_size=24, shard_size=4,
                     shuffle_buffer=4)
    return cfg, prepare_data(cfg, progress=False)


def _damage(path: str, how: str) -> None:
    if how == "truncate":
        os.truncate(path, os.path.getsize(path) // 2)
    else:  # bytes overwritten, size unchanged
        with open(path, "r+b") as f:
            f.seek(30)
            f.write(b"\xff" * 32)


@pytest.mark.parametrize("how, tf_says", [("truncate", "truncated record"), ("overwrite", "corrupted record")])
def test_a_damaged_shard_mid_epoch_is_named_by_read_error(own_prepared, how, tf_says):
    cfg, data = own_prepared
    victim = data.train_files[1]
    _damage(victim, how)  # after load_prepared: as if damaged while training runs
    with pytest.raises(READ_ERRORS) as raised:
        for _ in train_dataset(data, cfg, 2, seed=0, epoch=0):
            pass
    assert isinstance(raised.value, tf.errors.DataLossError) and tf_says in raised.value.message
    assert os.path.basename(victim) not in raised.value.message  # why read_error exists
    error = read_error(data, raised.value)
    assert isinstance(error, DataError)
    message = str(error)
    assert os.path.basename(victim) in message and "python -m alexnet_tf.prepare --verify" in message
    assert tf_says in message and data.directory in message
    assert sum(os.path.basename(f) in message for f in data.train_files + data.val_files) == 1  # only the victim


def test_read_error_finds_a_damaged_val_shard_and_a_missing_one(own_prepared):
    _, data = own_prepared
    _damage(data.val_files[0], "overwrite")
    message = str(read_error(data, tf.errors.DataLossError(None, None, "corrupted record at 12")))
    assert os.path.basename(data.val_files[0]) in message and "SHA-256" in message
    os.remove(data.train_files[2])
    message = str(read_error(data, tf.errors.NotFoundError(None, None, "gone")))
    assert f"{os.path.basename(data.train_files[2])} is missing" in message


def test_read_error_without_damage_says_so(own_prepared):
    _, data = own_prepared
    message = str(read_error(data, tf.errors.DataLossError(None, None, "corrupted record at 12")))
    assert "every shard now reads back as recorded" in message and "--verify" in message


def test_augment_off_trains_on_the_centre_crop_never_reflected(prepared):
    cfg, data = prepared
    off = dataclasses.replace(cfg, augment=False)
    squares = [r["image"] for r in read_shards(data.train_files)]
    centre = [sq[4:28, 4:28] for sq in squares]  # (32 - 24) // 2 = 4, as preprocess.center_crop
    for batch, _ in batches(train_dataset(data, off, 6, seed=5, epoch=1)):
        assert (batch["offset"] == 4).all() and not batch["flip"].any()
        assert batch["alpha"].any()  # lighting stays on: the switches are independent
        for image in batch["image"]:
            assert any(np.array_equal(image, c) for c in centre)
    on_offsets = np.concatenate([b["offset"] for b, _ in batches(train_dataset(data, cfg, 6, seed=5, epoch=1))])
    assert len({tuple(o) for o in on_offsets}) > 1


def test_lighting_off_draws_no_alphas_whatever_pca_std_says(prepared):
    cfg, data = prepared
    off = dataclasses.replace(cfg, lighting=False, pca_std=0.5)
    for batch, _ in batches(train_dataset(data, off, 6, seed=5, epoch=0)):
        assert not batch["alpha"].any()
        x = network_input(batch, data.stats, "channel").numpy()
        np.testing.assert_allclose(x, batch["image"] - data.stats.channel_mean, rtol=1e-6, atol=1e-4)
    on, _ = next(iter(train_dataset(data, dataclasses.replace(cfg, pca_std=0.5), 6, seed=5, epoch=0)))
    assert np.abs(on["alpha"].numpy()).mean() > 0.1

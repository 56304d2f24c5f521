"""Tests for alexnet_tf.data.fashion_mnist: the IDX reader against the real files and damaged copies, the splits,
and preparation of a small subset."""

import gzip
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.config import DataConfig
from alexnet_tf.data import prepare_data
from alexnet_tf.data.sources import fashion_mnist as fm
from alexnet_tf.errors import DataError

REAL = fm.DEFAULT_DIR


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file written by hand: magic, big-endian sizes, raw bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def write_set(folder, n_train=40, n_test=20, gz=True, seed=0):
    """Four small IDX files in Zalando's names; returns (train images, train labels)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    data = {}
    for part, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        data[part] = images, labels
        for stem, array, magic in ((fm.FILES[part][0], images, fm.IMAGE_MAGIC),
                                   (fm.FILES[part][1], labels, fm.LABEL_MAGIC)):
            raw = idx_bytes(array, magic)
            path = os.path.join(folder, stem + (".gz" if gz else ""))
            with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
                f.write(raw)
    return data


def test_the_real_files_have_the_official_sizes_and_balanced_classes():
    images, labels, path = fm.read_pair(REAL, "train")
    assert path.endswith("train-images-idx3-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8 and labels.shape == (60000,)
    assert np.bincount(labels).tolist() == [6000] * 10
    test_images, test_labels, _ = fm.read_pair(REAL, "test")
    assert test_images.shape == (10000, 28, 28) and np.bincount(test_labels).tolist() == [1000] * 10
    # Independent reading of the first image: skip the 16-byte header by hand.
    with gzip.open(os.path.join(REAL, "train-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read(16 + 784)
    assert int.from_bytes(raw[:4], "big") == 2051
    np.testing.assert_array_equal(images[0], np.frombuffer(raw[16:], np.uint8).reshape(28, 28))


def test_plain_and_gzipped_files_read_the_same(tmp_path):
    gz = write_set(str(tmp_path / "gz"), gz=True)
    write_set(str(tmp_path / "plain"), gz=False)
    images, labels, path = fm.read_pair(str(tmp_path / "plain"), "train")
    assert not path.endswith(".gz")
    np.testing.assert_array_equal(images, gz["train"][0])
    np.testing.assert_array_equal(labels, gz["train"][1])


def test_a_truncated_gzip_file_is_refused_by_name(tmp_path):
    folder = str(tmp_path)
    write_set(folder)
    path = os.path.join(folder, "train-images-idx3-ubyte.gz")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*truncated"):
        fm.read_pair(folder, "train")


def test_a_truncated_plain_file_is_refused_with_its_sizes(tmp_path):
    folder = str(tmp_path)
    write_set(folder, gz=False)
    path = os.path.join(folder, "t10k-images-idx3-ubyte")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte' is truncated: its header declares 20x28x28"):
        fm.read_pair(folder, "test")


def test_a_wrong_magic_number_is_refused_by_name(tmp_path):
    folder = str(tmp_path)
    write_set(folder, gz=False)
    # Labels where images belong: the magic number says 2049.
    shutil.copy(os.path.join(folder, "train-labels-idx1-ubyte"), os.path.join(folder, "train-images-idx3-ubyte"))
    with pytest.raises(DataError, match="train-images-idx3-ubyte' has magic number 2049, not 2051"):
        fm.read_pair(folder, "train")


def test_image_and_label_counts_that_disagree_are_refused_naming_both_files(tmp_path):
    folder = str(tmp_path)
    write_set(folder, gz=False)
    labels = np.zeros(39, np.uint8)
    open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb").write(idx_bytes(labels, fm.LABEL_MAGIC))
    with pytest.raises(DataError, match="train-images-idx3-ubyte' holds 40 images but .*train-labels-idx1-ubyte' "
                                        "holds 39 labels"):
        fm.read_pair(folder, "train")


def test_labels_out_of_range_and_missing_files_are_refused(tmp_path):
    folder = str(tmp_path)
    write_set(folder, gz=False)
    open(os.path.join(folder, "t10k-labels-idx1-ubyte"), "wb").write(
        idx_bytes(np.full(20, 10, np.uint8), fm.LABEL_MAGIC))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte' holds label 10"):
        fm.read_pair(folder, "test")
    os.remove(os.path.join(folder, "t10k-labels-idx1-ubyte"))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.*does not exist.*dataset-fashion-mnist"):
        fm.read_pair(folder, "test")


def test_the_holdout_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(10), 50)[np.random.default_rng(3).permutation(500)]
    train, held = fm.split_indices(labels, 100, 0)
    assert np.bincount(labels[held], minlength=10).tolist() == [10] * 10
    assert len(set(train) & set(held)) == 0 and len(train) + len(held) == 500
    again_train, again_held = fm.split_indices(labels, 100, 0)
    np.testing.assert_array_equal(held, again_held)
    np.testing.assert_array_equal(train, again_train)
    smaller_train, smaller_held = fm.split_indices(labels, 50, 200)
    assert set(smaller_held) <= set(held)  # nested: a smaller holdout is part of a larger one
    assert len(smaller_train) == 200 and np.bincount(labels[smaller_train]).min() >= 10
    with pytest.raises(DataError, match="data.holdout 500 leaves none"):
        fm.split_indices(labels, 500, 0)


def test_the_source_gives_grey_photos_as_pngs_with_the_documented_classes(tmp_path):
    folder = str(tmp_path / "set")
    data = write_set(folder)
    source = fm.fashion_mnist_source(f"fashion_mnist:{folder}")
    assert source.splits["train"].count == 40 and source.splits["val"].count == 20  # val = the test set
    assert source.vocabulary.names[0] == "T-shirt/top" and source.vocabulary.names[9] == "Ankle boot"
    val = list(source.splits["val"].records(lambda i: i >= 3))
    assert [int(i) for i, _, _ in val] == [0, 1, 2]
    for i, encoded, label in val:
        rgb = tf.io.decode_image(encoded, channels=3).numpy()
        for c in range(3):
            np.testing.assert_array_equal(rgb[..., c], data["test"][0][int(i)])
        assert int(label) == data["test"][1][int(i)]
    held = fm.fashion_mnist_source(f"fashion_mnist:{folder}", holdout=10, train_images=20)
    assert held.splits["train"].count == 20 and held.splits["val"].count == 10
    assert held.splits["val"].fingerprint != source.splits["val"].fingerprint
    assert "image" in held.splits["val"].name_of(0) and folder in held.splits["val"].name_of(0)


def test_prepare_data_upscales_a_subset_of_the_real_set(tmp_path):
    cfg = DataConfig(source="fashion_mnist", holdout=20, train_images=30, image_size=40, crop_size=32,
                     cache_dir=str(tmp_path), shard_size=16)
    prepared = prepare_data(cfg, progress=False)
    assert prepared.num_train == 30 and prepared.num_val == 20 and prepared.image_size == 40
    assert len(prepared.vocabulary) == 10
    stats = prepared.stats
    assert stats.mean_image.shape == (40, 40, 3)
    # Grey photos: the three channels' means agree, and the PCA has one dominant direction, (1, 1, 1)/sqrt(3).
    np.testing.assert_allclose(stats.channel_mean, stats.channel_mean.mean(), atol=1.0)
    top = stats.eigvecs[:, np.argmax(stats.eigvals)]
    np.testing.assert_allclose(np.abs(top), np.full(3, 1 / np.sqrt(3)), atol=0.02)


def test_holdout_keys_are_refused_for_other_sources(tmp_path):
    with pytest.raises(DataError, match="data.holdout and data.train_images apply to data.source=fashion_mnist"):
        prepare_data(DataConfig(source="demo", holdout=10, cache_dir=str(tmp_path)), progress=False)

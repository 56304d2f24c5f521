"""Tests of dataset statistics and the vocabulary: streaming sums vs NumPy's mean and np.linalg.eigh, file formats."""

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import write_folder

from alexnet_tf.config import DataConfig
from alexnet_tf.data import DatasetStats, StatsAccumulator, Vocabulary, prepare_data
from alexnet_tf.data.preprocess import eval_square
from alexnet_tf.data.vocab import read_synset_names
from alexnet_tf.errors import StatsError, VocabularyError


def numpy_reference(images: np.ndarray):
    pixels = images.reshape(-1, 3).astype(np.float64)
    cov = np.cov(pixels, rowvar=False, bias=True)  # population covariance, 0-255 scale
    vals, vecs = np.linalg.eigh(cov)
    return images.astype(np.float64).mean(0), pixels.mean(0), vals[::-1], vecs[:, ::-1]


def assert_stats_match(stats: DatasetStats, images: np.ndarray):
    mean_image, channel_mean, vals, vecs = numpy_reference(images)
    np.testing.assert_allclose(stats.mean_image, mean_image, rtol=1e-6)
    np.testing.assert_allclose(stats.channel_mean, channel_mean, rtol=1e-6)
    np.testing.assert_allclose(stats.eigvals, vals, rtol=1e-4)
    # Eigenvectors are defined up to sign: compare |p_i . q_i| and the sign convention separately.
    np.testing.assert_allclose(np.abs(np.sum(stats.eigvecs * vecs, axis=0)), 1.0, rtol=1e-4)
    assert (stats.eigvecs[np.argmax(np.abs(stats.eigvecs), axis=0), range(3)] > 0).all()
    assert np.all(np.diff(stats.eigvals) <= 0) and stats.count == len(images)


def test_streaming_statistics_equal_numpy_in_any_order_and_split():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (9, 6, 6, 1))
    images = np.clip(base + rng.integers(-40, 40, (9, 6, 6, 3)), 0, 255).astype(np.uint8)  # correlated channels
    whole = StatsAccumulator(6)
    whole.add(images)
    assert_stats_match(whole.finalize(), images)
    a, b = StatsAccumulator(6), StatsAccumulator(6)
    for img in images[5:][::-1]:
        a.add(img)
    b.add(images[:5])
    b.merge(a)
    merged = b.finalize()
    for key in ("mean_image", "channel_mean", "eigvals", "eigvecs"):
        assert np.array_equal(getattr(merged, key), getattr(whole.finalize(), key)), key


def test_statistics_file_round_trip_and_errors(tmp_path):
    acc = StatsAccumulator(4)
    acc.add(np.random.default_rng(1).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8))
    stats = acc.finalize()
    path = tmp_path / "stats.npz"
    stats.save(path)
    assert sorted(os.listdir(tmp_path)) == ["stats.npz"]  # no temporary left behind
    with np.load(path) as z:
        assert z["mean_image"].dtype == np.float32 and z["mean_image"].shape == (4, 4, 3)
        assert z["eigvecs"].shape == (3, 3) and z["count"].dtype == np.int64
    loaded = DatasetStats.load(path)
    for key in ("mean_image", "channel_mean", "eigvals", "eigvecs"):
        assert np.array_equal(getattr(loaded, key), getattr(stats, key))
    assert loaded.count == 3 and loaded.image_size == 4
    with pytest.raises(StatsError, match="does not exist"):
        DatasetStats.load(tmp_path / "missing.npz")
    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[:100])  # a half-copied file: an error naming it
    with pytest.raises(StatsError, match="truncated.npz.*cannot be read"):
        DatasetStats.load(tmp_path / "truncated.npz")
    with pytest.raises(StatsError, match="no training image"):
        StatsAccumulator(4).finalize()
    with pytest.raises(StatsError, match="shape"):
        acc.add(np.zeros((5, 5, 3), np.uint8))
    partial = tmp_path / "partial.npz"
    acc.save(partial)
    assert np.array_equal(StatsAccumulator.load(partial).finalize().mean_image, stats.mean_image)


def test_prepared_statistics_equal_numpy_over_the_training_squares(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 5, "n02": 4}, size=(40, 56))
    cfg = DataConfig(source=root, cache_dir=str(tmp_path / "cache"), image_size=32, crop_size=24, shard_size=3)
    prepared = prepare_data(cfg, progress=False)
    squares = np.stack([eval_square(tf.io.read_file(os.path.join(d, f)), 32).numpy()
                        for d, _, files in os.walk(os.path.join(root, "train")) for f in files])
    assert_stats_match(prepared.stats, squares)
    assert_stats_match(DatasetStats.load(prepared.stats_path), squares)


def test_vocabulary_round_trip_and_errors(tmp_path):
    vocab = Vocabulary.from_wnids(["n01440764", "n01443537"], {"n01440764": "tench"})
    path = tmp_path / "classes.tsv"
    vocab.save(path)
    assert path.read_text() == "0\tn01440764\ttench\n1\tn01443537\tn01443537\n"
    assert Vocabulary.load(path) == vocab and vocab.index("n01443537") == 1 and len(vocab) == 2
    with pytest.raises(VocabularyError, match="unknown class"):
        vocab.index("n999")
    with pytest.raises(VocabularyError, match="duplicate"):
        Vocabulary(("a", "a"), ("x", "y"))
    with pytest.raises(VocabularyError, match="tabs"):
        Vocabulary(("a",), ("x\ty",))
    (tmp_path / "bad.tsv").write_text("0\tn1\tone\n2\tn2\ttwo\n")
    with pytest.raises(VocabularyError, match="out of order"):
        Vocabulary.load(tmp_path / "bad.tsv")
    with pytest.raises(VocabularyError, match="does not exist"):
        Vocabulary.load(tmp_path / "none.tsv")
    (tmp_path / "latin1.tsv").write_bytes(b"0\tn1\tcaf\xe9\n")
    with pytest.raises(VocabularyError, match="latin1.tsv.*cannot be read"):
        Vocabulary.load(tmp_path / "latin1.tsv")
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish\n")
    assert read_synset_names(tmp_path / "LOC_synset_mapping.txt") == {"n01440764": "tench", "n01443537": "goldfish"}

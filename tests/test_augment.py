"""Tests of alexnet_tf.data.augment against NumPy: seeds, crops, reflections, PCA lighting, mean crops, network_input;
each op eagerly and inside tf.data.map."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import photo

from alexnet_tf.data import augment
from alexnet_tf.data.stats import DatasetStats, eigen_rgb


def in_tf_data(fn, *args):
    ds = tf.data.Dataset.from_tensors(tuple(tf.convert_to_tensor(a) for a in args)).map(fn)
    out = next(iter(ds))
    return tf.nest.map_structure(lambda t: t.numpy(), out)


def random_stats(size: int, seed: int = 0) -> DatasetStats:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, 3))
    vals, vecs = eigen_rgb(a @ a.T * 1000)
    return DatasetStats(rng.uniform(0, 255, (size, size, 3)), rng.uniform(50, 200, 3), vals, vecs, 10)


def test_element_seeds_depend_on_seed_epoch_and_index():
    seeds = {tuple(augment.element_seed(s, e, i).numpy()) for s in (0, 1) for e in (0, 1) for i in (0, 1, 2)}
    assert len(seeds) == 12
    assert np.array_equal(augment.element_seed(3, 4, 5).numpy(), augment.element_seed(3, 4, 5).numpy())


def test_draws_are_in_range_reproducible_and_distributed_as_specified():
    draws = [augment.draw_augmentation(augment.element_seed(0, 0, i), 40, 32, True, 0.1) for i in range(1500)]
    offsets = np.array([d["offset"].numpy() for d in draws])
    flips = np.array([bool(d["flip"]) for d in draws])
    alphas = np.array([d["alpha"].numpy() for d in draws])
    assert offsets.min() == 0 and offsets.max() == 8  # uniform over 0..image_size-crop, both ends reached
    assert len(np.unique(offsets[:, 0])) == 9
    assert 0.45 < flips.mean() < 0.55
    assert abs(alphas.mean()) < 0.01 and 0.09 < alphas.std() < 0.11
    again = augment.draw_augmentation(augment.element_seed(0, 0, 7), 40, 32, True, 0.1)
    assert np.array_equal(again["offset"], offsets[7]) and np.array_equal(again["alpha"], alphas[7])
    seed = augment.element_seed(0, 0, 7)
    graph = in_tf_data(lambda s: augment.draw_augmentation(s, 40, 32, True, 0.1), seed)
    assert np.array_equal(graph["offset"], offsets[7]) and np.array_equal(graph["alpha"], alphas[7])
    off = augment.draw_augmentation(seed, 40, 32, False, 0.0)
    assert not bool(off["flip"]) and not off["alpha"].numpy().any()


def test_decode_and_crop_equals_full_decode_then_slice():
    # Prepared shards are 4:4:4 JPEGs (see prepare.py): with them the fused crop is exact at any offset.
    jpeg = tf.io.encode_jpeg(photo(48, 48), quality=90, chroma_downsampling=False).numpy()
    full = tf.io.decode_jpeg(jpeg, channels=3).numpy()
    for offset in ([0, 0], [5, 11], [16, 16], [7, 3]):
        out = augment.decode_and_crop(tf.constant(jpeg), tf.constant(offset), 32).numpy()
        assert np.array_equal(out, full[offset[0]:offset[0] + 32, offset[1]:offset[1] + 32])
        assert np.array_equal(in_tf_data(lambda b, o: augment.decode_and_crop(b, o, 32), jpeg, offset), out)


def test_crop_and_reflect_are_exact():
    image = photo(10, 12)
    assert np.array_equal(augment.crop(tf.constant(image), tf.constant([2, 3]), 5).numpy(), image[2:7, 3:8])
    assert np.array_equal(augment.reflect(image, True).numpy(), image[:, ::-1])
    assert np.array_equal(augment.reflect(image, False).numpy(), image)
    assert np.array_equal(in_tf_data(augment.reflect, image, True), image[:, ::-1])
    batch = np.stack([image, image // 2, image // 3])
    flags = np.array([True, False, True])
    expected = np.stack([image[:, ::-1], image // 2, (image // 3)[:, ::-1]])
    assert np.array_equal(augment.reflect(batch, flags).numpy(), expected)
    assert np.array_equal(in_tf_data(augment.reflect, batch, flags), expected)


def test_pca_lighting_adds_the_papers_offset_for_known_alphas():
    stats = random_stats(4)
    alpha = np.array([0.3, -1.2, 0.05], np.float32)
    expected = stats.eigvecs.astype(np.float64) @ (alpha * stats.eigvals)  # [p1 p2 p3] . (alpha * lambda)
    np.testing.assert_allclose(augment.lighting_offset(alpha, stats.eigvals, stats.eigvecs).numpy(), expected,
                               rtol=1e-5)
    manual = sum(alpha[i] * stats.eigvals[i] * stats.eigvecs[:, i] for i in range(3))
    np.testing.assert_allclose(expected, manual, rtol=1e-5)
    image = photo(5, 6)
    out = augment.pca_lighting(image, alpha, stats.eigvals, stats.eigvecs).numpy()
    np.testing.assert_allclose(out, image + expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(in_tf_data(lambda x, a: augment.pca_lighting(x, a, stats.eigvals, stats.eigvecs),
                                          image, alpha), out, rtol=1e-6)
    # Batches: one alpha per image.
    alphas = np.array([[0.1, 0.2, 0.3], [-0.5, 0.0, 0.5]], np.float32)
    batch = np.stack([image, image])
    out = augment.pca_lighting(batch, alphas, stats.eigvals, stats.eigvecs).numpy()
    for k in range(2):
        np.testing.assert_allclose(out[k], image + stats.eigvecs @ (alphas[k] * stats.eigvals), rtol=1e-5, atol=1e-3)


def test_lighting_scale_is_sqrt_or_the_eigenvalue():
    vals = np.array([900.0, 16.0, 4.0], np.float32)
    np.testing.assert_allclose(augment.lighting_scale(vals, "stddev").numpy(), [30, 4, 2])
    np.testing.assert_allclose(augment.lighting_scale(vals, "eigenvalue").numpy(), vals)
    with pytest.raises(ValueError, match="pca_scale"):
        augment.lighting_scale(vals, "variance")


def test_crop_mean_image_matches_numpy_slices_and_reflections():
    mean = np.random.default_rng(1).uniform(0, 255, (12, 12, 3)).astype(np.float32)
    offsets = np.array([[0, 0], [4, 1], [2, 4]], np.int32)
    flips = np.array([False, True, True])
    expected = np.stack([mean[t:t + 8, x:x + 8][:, ::-1] if f else mean[t:t + 8, x:x + 8]
                         for (t, x), f in zip(offsets, flips)])
    assert np.array_equal(augment.crop_mean_image(mean, offsets, flips, 8).numpy(), expected)
    assert np.array_equal(in_tf_data(lambda o, f: augment.crop_mean_image(mean, o, f, 8), offsets, flips), expected)


@pytest.mark.parametrize("mean_kind", ["image", "channel"])
def test_network_input_equals_the_papers_order_of_operations(mean_kind):
    """Paper order, in NumPy on the full square: subtract the mean, crop, reflect, add lighting."""
    size, crop = 12, 8
    stats = random_stats(size, seed=2)
    rng = np.random.default_rng(3)
    squares = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    offsets = np.array([[0, 4], [3, 2], [4, 0]], np.int32)
    flips = np.array([True, False, True])
    alphas = rng.normal(0, 0.1, (3, 3)).astype(np.float32)
    expected = []
    for sq, (t, x), f, a in zip(squares, offsets, flips, alphas):
        centred = sq.astype(np.float64) - (stats.mean_image if mean_kind == "image" else stats.channel_mean)
        patch = centred[t:t + crop, x:x + crop]
        patch = patch[:, ::-1] if f else patch
        expected.append(patch + stats.eigvecs @ (a * np.sqrt(stats.eigvals)))
    # What the pipeline hands over: uint8 crops already reflected, and the draws.
    images = np.stack([(sq[t:t + crop, x:x + crop][:, ::-1] if f else sq[t:t + crop, x:x + crop])
                       for sq, (t, x), f in zip(squares, offsets, flips)])
    batch = {"image": tf.constant(images), "offset": tf.constant(offsets), "flip": tf.constant(flips),
             "alpha": tf.constant(alphas)}
    out = tf.function(lambda b: augment.network_input(b, stats, mean_kind, "stddev"))(batch).numpy()
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-5, atol=1e-3)
    eager = augment.network_input(batch, stats, mean_kind, "stddev").numpy()
    np.testing.assert_allclose(eager, out, rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match="data.mean"):
        augment.network_input(batch, stats, "median")

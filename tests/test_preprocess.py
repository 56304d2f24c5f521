"""Tests of alexnet_tf.data.preprocess: decoding odd files, the 256 square, mean, centre and ten crops (eager and in
tf.data.map), against NumPy and PIL."""

import io

import numpy as np
import pytest
import tensorflow as tf
from helpers import bad_files, crafted_gif, encode, odd_files, photo
from PIL import Image

from alexnet_tf.data import preprocess


def in_tf_data(fn, *args):
    """fn applied inside tf.data.map (graph mode, tf.data's own executor)."""
    ds = tf.data.Dataset.from_tensors(tuple(tf.convert_to_tensor(a) for a in args)).map(fn)
    return next(iter(ds)).numpy()


def test_decode_rgb_odd_files_become_rgb_with_the_right_pixels():
    original = photo(60, 80)
    rgb = Image.fromarray(original)
    files = odd_files()
    for name, data in files.items():
        out = preprocess.decode_rgb(tf.constant(data)).numpy()
        assert out.shape == (60, 80, 3) and out.dtype == np.uint8, name
        assert np.array_equal(out, in_tf_data(preprocess.decode_rgb, data)), name
    # Lossless ones are exact; greyscale has equal channels equal to PIL's luminance; CMYK is close to the RGB.
    assert np.array_equal(preprocess.decode_rgb(files["png_named.JPEG"]).numpy(), original)
    assert np.array_equal(preprocess.decode_rgb(files["rgba_png.JPEG"]).numpy(), original)
    gif = preprocess.decode_rgb(files["gif.JPEG"]).numpy()
    assert np.array_equal(gif, np.asarray(rgb.convert("P").convert("RGB")))
    grey = preprocess.decode_rgb(files["grey.JPEG"]).numpy().astype(int)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    assert np.abs(grey[..., 0] - np.asarray(rgb.convert("L"), int)).mean() < 3
    cmyk = preprocess.decode_rgb(files["cmyk.JPEG"]).numpy().astype(int)
    assert np.abs(cmyk - original.astype(int)).mean() < 12


@pytest.mark.parametrize("name", sorted(bad_files()))
def test_decode_rgb_rejects_bad_files(name):
    with pytest.raises(tf.errors.InvalidArgumentError):
        preprocess.decode_rgb(tf.constant(bad_files()[name]))


def test_decode_rgb_refuses_too_many_pixels_from_the_header():
    data = encode(Image.fromarray(photo(60, 80)), "PNG")
    assert preprocess.declared_size(tf.constant(data))[1:] == (60, 80)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixels"):
        preprocess.decode_rgb(tf.constant(data), max_pixels=60 * 80 - 1)


def test_decode_rgb_of_an_animated_gif_is_its_first_frame_and_only_that_frame_is_decoded():
    frames = [Image.fromarray(photo(60, 80, seed)).convert("P", palette=Image.ADAPTIVE) for seed in range(4)]
    for options in ({"comment": b"x" * 600, "loop": 0, "duration": 50}, {"transparency": 3, "disposal": 2}):
        buffer = io.BytesIO()
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], **options)
        data = buffer.getvalue()
        first = tf.io.decode_gif(data)[0].numpy()
        assert np.array_equal(preprocess.decode_rgb(tf.constant(data)).numpy(), first)
        assert np.array_equal(in_tf_data(preprocess.decode_rgb, data), first)
    # TensorFlow's decoder would give every frame the size of the largest one (here 2,000 x 2,000), and decode
    # them all: only the first frame reaches it.
    two = crafted_gif((40, 30), [(40, 30), (2000, 2000)])
    assert tf.io.decode_gif(two).shape == (2, 2000, 2000, 3)
    assert np.array_equal(preprocess.decode_rgb(tf.constant(two)).numpy(), np.zeros((30, 40, 3), np.uint8))


def test_decode_rgb_refuses_a_gif_frame_larger_than_its_screen_from_the_header():
    # The decoder allocates the frame, not the logical screen: a 16 x 16 screen may hold a 10,000 x 10,000 frame.
    bomb = crafted_gif((16, 16), [(10000, 10000)])
    assert len(bomb) < 100_000
    assert [int(v) for v in preprocess.declared_size(tf.constant(bomb))[1:]] == [10000, 10000]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)10000.*x.*10000.*above the limit"):
        preprocess.decode_rgb(tf.constant(bomb))
    largest = crafted_gif((16, 16), [(65535, 65535)], encoded_pixels=1000)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)65535.*x.*65535.*above the limit"):
        in_tf_data(preprocess.decode_rgb, largest)
    # A frame within its screen is measured by the screen.
    small = crafted_gif((64, 48), [(20, 10)])
    assert [int(v) for v in preprocess.declared_size(tf.constant(small))[1:]] == [48, 64]


def test_resize_to_square_is_a_central_slice_when_the_short_side_already_fits():
    image = photo(64, 100)  # shorter side 64: no resampling, the central 64 columns 18..81
    out = preprocess.resize_to_square(tf.constant(image), 64).numpy()
    assert np.array_equal(out, image[:, 18:82])
    tall = photo(101, 64)  # odd excess: the offset rounds down
    assert np.array_equal(preprocess.resize_to_square(tf.constant(tall), 64).numpy(), tall[18:82])
    assert np.array_equal(in_tf_data(lambda x: preprocess.resize_to_square(x, 64), image), out)


def test_resize_to_square_scales_the_shorter_side():
    constant = np.full((90, 150, 3), (10, 200, 77), np.uint8)
    out = preprocess.resize_to_square(tf.constant(constant), 32).numpy()
    assert out.shape == (32, 32, 3) and np.array_equal(out, np.full((32, 32, 3), (10, 200, 77), np.uint8))
    # A left/right split image keeps its split at the centre after scaling by 1/2.
    split = np.zeros((64, 128, 3), np.uint8)
    split[:, 64:] = 255
    out = preprocess.resize_to_square(tf.constant(split), 32).numpy()  # -> 32x64, central 32 columns 16..47
    assert (out[:, :15] == 0).all() and (out[:, 17:] == 255).all()


def test_resize_to_square_of_an_ordinary_photo_is_the_whole_resize_cut_to_its_centre():
    image = photo(75, 100, seed=3)  # 3:4, like most ILSVRC photos: resized whole to 48x64, then columns 8..55
    expected = tf.image.resize(image, [48, 64], method="bilinear", antialias=True)[:, 8:56]
    expected = np.clip(np.round(expected.numpy()), 0, 255).astype(np.uint8)
    assert np.array_equal(preprocess.resize_to_square(tf.constant(image), 48).numpy(), expected)


def test_resize_to_square_cuts_an_extremely_long_image_before_resizing():
    # A 3 x 3,001 strip (9,003 pixels, far below the pixel limit) would be resized whole to 256 x 256,085 floats
    # (787 MB); it is first cut to its central 3 x 30 (MAX_ASPECT 10), so the resize stays small. (The whole resize
    # samples half a pixel elsewhere here, so this comparison tells the two apart.)
    strip = np.random.default_rng(4).integers(0, 256, (3, 3001, 3), dtype=np.uint8)
    assert preprocess.MAX_ASPECT == 10
    cut = strip[:, 1485:1515]
    out = preprocess.resize_to_square(tf.constant(strip), 256).numpy()
    assert np.array_equal(out, preprocess.resize_to_square(tf.constant(cut), 256).numpy())
    tall = np.ascontiguousarray(strip.transpose(1, 0, 2))
    assert np.array_equal(preprocess.resize_to_square(tf.constant(tall), 16).numpy(),
                          preprocess.resize_to_square(tf.constant(tall[1485:1515]), 16).numpy())
    assert np.array_equal(in_tf_data(lambda x: preprocess.resize_to_square(x, 256), strip), out)


def test_subtract_mean_matches_numpy_for_image_and_channel_means():
    image = photo(8, 8)
    mean_image = np.random.default_rng(0).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    channel = np.array([1.5, 2.5, 3.5], np.float32)
    np.testing.assert_allclose(preprocess.subtract_mean(image, mean_image).numpy(), image - mean_image, rtol=1e-6)
    np.testing.assert_allclose(preprocess.subtract_mean(image, channel).numpy(), image - channel, rtol=1e-6)
    np.testing.assert_allclose(in_tf_data(preprocess.subtract_mean, image, mean_image), image - mean_image,
                               rtol=1e-6)


def test_center_crop_is_exact_for_single_images_and_batches():
    image = tf.constant(np.arange(9 * 10 * 3).reshape(9, 10, 3))
    assert np.array_equal(preprocess.center_crop(image, 4).numpy(), image[2:6, 3:7])
    batch = tf.stack([image, image + 1])
    assert np.array_equal(preprocess.center_crop(batch, 4).numpy(), batch.numpy()[:, 2:6, 3:7])
    assert np.array_equal(in_tf_data(lambda x: preprocess.center_crop(x, 4), image), image[2:6, 3:7])


def test_ten_crop_gives_the_documented_patches_in_order():
    h, w, c = 7, 9, 5
    image = np.arange(h * w * 3).reshape(h, w, 3)
    expected = {
        "center": image[1:6, 2:7], "top_left": image[:5, :5], "top_right": image[:5, 4:],
        "bottom_left": image[2:, :5], "bottom_right": image[2:, 4:],
    }
    for name in list(expected):
        expected[name + "_flipped"] = expected[name][:, ::-1]
    out = preprocess.ten_crop(tf.constant(image), c).numpy()
    assert out.shape == (10, c, c, 3)
    for k, name in enumerate(preprocess.TEN_CROP_ORDER):
        assert np.array_equal(out[k], expected[name]), name
    assert np.array_equal(in_tf_data(lambda x: preprocess.ten_crop(x, c), image), out)


def test_eval_square_decodes_and_squares_an_odd_file():
    data = odd_files()["png_named.JPEG"]  # 60x80 -> the central 60x60 when size is 60
    out = preprocess.eval_square(tf.constant(data), 60).numpy()
    assert np.array_equal(out, photo(60, 80)[:, 10:70])
    assert np.array_equal(in_tf_data(lambda b: preprocess.eval_square(b, 60), data), out)


# ---------------------------------------------------------------------------------------------------------------------
# Batches (what trained models and the export run on encoded files).

def _batch_files() -> list[bytes]:
    return [encode(photo(60, 80, seed=1), "JPEG"), encode(photo(90, 50, seed=2), "PNG"),
            odd_files()["png_named.JPEG"]]


def test_squares_from_bytes_is_eval_square_of_each_file_and_enforces_max_batch():
    files = _batch_files()
    squares = preprocess.squares_from_bytes(tf.constant(files), 32).numpy()
    assert squares.shape == (3, 32, 32, 3) and squares.dtype == np.uint8
    for square, data in zip(squares, files):
        assert np.array_equal(square, preprocess.eval_square(tf.constant(data), 32).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 2 are accepted"):
        preprocess.squares_from_bytes(tf.constant(files), 32, max_batch=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a JPEG, PNG, GIF or BMP"):
        preprocess.squares_from_bytes(tf.constant([files[0], b"not an image"]), 32)


def test_squares_from_images_resize_each_decoded_image():
    images = np.stack([photo(40, 40, seed=3), photo(40, 40, seed=4)])
    squares = preprocess.squares_from_images(tf.constant(images), 24).numpy()
    for square, image in zip(squares, images):
        assert np.array_equal(square, preprocess.resize_to_square(tf.constant(image), 24).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 1 are accepted"):
        preprocess.squares_from_images(tf.constant(images), 24, max_batch=1)


@pytest.mark.parametrize("mean_kind", ["image", "channel"])
def test_ten_crop_and_center_patches_subtract_the_mean_then_crop_each_image(mean_kind):
    rng = np.random.default_rng(5)
    squares = rng.integers(0, 256, (2, 12, 12, 3)).astype(np.uint8)
    mean = rng.uniform(0, 255, (12, 12, 3) if mean_kind == "image" else (3,)).astype(np.float32)
    ten = preprocess.ten_crop_patches(tf.constant(squares), mean, 8).numpy()
    center = preprocess.center_patches(tf.constant(squares), mean, 8).numpy()
    assert ten.shape == (2, 10, 8, 8, 3) and center.shape == (2, 8, 8, 3)
    for i, square in enumerate(squares):
        centred = square.astype(np.float32) - mean
        np.testing.assert_allclose(ten[i], preprocess.ten_crop(tf.constant(centred), 8).numpy(), rtol=1e-6)
        np.testing.assert_allclose(center[i], centred[2:10, 2:10], rtol=1e-6)
    np.testing.assert_array_equal(ten[:, 0], center)  # TEN_CROP_ORDER starts with the centre patch

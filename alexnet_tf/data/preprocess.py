"""Deterministic image ops shared by preparation, evaluation and export: decode, resize, mean, centre and ten crops,
one image at a time and in batches (encoded files or decoded images -> squares -> patches).

Every function here is a pure TensorFlow function that works eagerly, inside `tf.data.map` and inside an exported
SavedModel, so that the served model preprocesses exactly as evaluation does (export imports these, never copies).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# A decoded image above this many pixels is refused before decoding (a "decompression bomb": a small file that
# declares huge dimensions). 8,000 x 8,000 is far above any ILSVRC image (the largest are about 4,300 x 6,000 ... ).
MAX_PIXELS = 64_000_000

# `resize_to_square` first cuts an image's longer side down to this many times its shorter side (centred). Only the
# central square is kept anyway, but resizing a tiny 1 x 20,000 image whole would make a 256 x 5,120,000 float image
# (16 GB) that the pixel limit does not see; with the cut the resize makes at most 256 x 2,560 pixels. No ordinary
# photograph is this elongated, so for them nothing changes.
MAX_ASPECT = 10

# The order of `ten_crop`'s patches: the centre and the four corners, then the same five reflected left-right.
TEN_CROP_ORDER = ("center", "top_left", "top_right", "bottom_left", "bottom_right",
                  "center_flipped", "top_left_flipped", "top_right_flipped", "bottom_left_flipped",
                  "bottom_right_flipped")


def _read_uint(data: tf.Tensor, offset: int, size: int, little_endian: bool) -> tf.Tensor:
    """Reads an unsigned integer of `size` bytes at `offset` of a scalar string, as int64."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8), tf.int64)
    order = range(size) if little_endian else range(size - 1, -1, -1)
    return tf.add_n([raw[i] * (256 ** p) for p, i in enumerate(order)])


# GIF block introducers and the walk's states (`_gif_first_frame`).
_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, b"\x3b"


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _gif_first_frame(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Finds a GIF's first image by walking its blocks, without decoding: (height, width, end).

    The decoder allocates each frame at the size its image descriptor declares (up to 65,535 x 65,535, whatever the
    logical screen says) and decodes every frame, so the pixel limit must see the first frame's size and only that
    frame may reach the decoder. `end` is the offset just after the first image's data (0 when the file ends or
    goes wrong before it does); the height and width are 0 when no image descriptor was found.
    """
    data = tf.cast(tf.io.decode_raw(image_bytes, tf.uint8), tf.int64)
    n = tf.size(data, out_type=tf.int64)
    block_start, in_extension, in_image, done, bad = (tf.constant(s, tf.int64) for s in range(5))

    def byte(offset: tf.Tensor) -> tf.Tensor:
        return tf.gather(data, tf.clip_by_value(tf.cast(offset, tf.int64), 0, n - 1))

    def color_table_size(flags: tf.Tensor) -> tf.Tensor:  # a colour table of 2^(N+1) RGB entries follows the flags
        return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(1, tf.int64), flags % 8 + 1),
                        tf.constant(0, tf.int64))

    def step(pos: tf.Tensor, state: tf.Tensor, frame: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        b = byte(pos)
        at_block = tf.equal(state, block_start)
        is_image = tf.logical_and(at_block, tf.equal(b, _GIF_IMAGE))
        # At a block: an extension skips its introducer and label; an image its descriptor, colour table and LZW
        # code size. In sub-blocks: a size byte, 0 ending the block. Every step moves on, so the walk ends.
        block_pos = tf.where(is_image, pos + 11 + color_table_size(byte(pos + 9)), pos + 2)
        block_state = tf.where(tf.equal(b, _GIF_EXTENSION), in_extension, tf.where(is_image, in_image, bad))
        ended_state = tf.where(tf.equal(state, in_image), done, block_start)
        sub_state = tf.where(tf.equal(b, 0), ended_state, state)
        return (tf.where(at_block, block_pos, pos + b + 1), tf.where(at_block, block_state, sub_state),
                tf.where(is_image, pos, frame))

    start = 13 + color_table_size(byte(10))
    pos, state, frame = tf.while_loop(lambda pos, state, frame: tf.logical_and(state < done, pos < n), step,
                                      (start, block_start, tf.constant(-1, tf.int64)))
    found = tf.logical_and(frame >= 0, frame + 10 <= n)
    zero = tf.constant(0, tf.int64)
    height = tf.where(found, byte(frame + 7) + 256 * byte(frame + 8), zero)
    width = tf.where(found, byte(frame + 5) + 256 * byte(frame + 6), zero)
    return height, width, tf.where(tf.equal(state, done), pos, zero)


def _inspect(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """(known, height, width, payload): `declared_size`, and the bytes to decode (a GIF cut after its first frame)."""
    length = tf.strings.length(image_bytes)
    head = tf.strings.substr(image_bytes, 0, 4)

    def jpeg() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0], shape[1], image_bytes

    def png() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # IHDR: width then height, big-endian, at bytes 16 and 20
        return _read_uint(image_bytes, 20, 4, False), _read_uint(image_bytes, 16, 4, False), image_bytes

    def gif() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        # The logical screen (width then height, little-endian, at bytes 6 and 8) or the first frame, the larger.
        screen_h, screen_w = _read_uint(image_bytes, 8, 2, True), _read_uint(image_bytes, 6, 2, True)
        frame_h, frame_w, end = _gif_first_frame(image_bytes)
        frame_larger = frame_h * frame_w > screen_h * screen_w
        first_frame = tf.strings.join([tf.strings.substr(image_bytes, tf.constant(0, tf.int64), end), _GIF_TRAILER])
        return (tf.where(frame_larger, frame_h, screen_h), tf.where(frame_larger, frame_w, screen_w),
                tf.where(end > 0, first_frame, image_bytes))

    def bmp() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # BITMAPINFOHEADER: width, height (signed; negative: top-down)
        w = tf.io.decode_raw(tf.strings.substr(image_bytes, 18, 4), tf.int32, little_endian=True)[0]
        h = tf.io.decode_raw(tf.strings.substr(image_bytes, 22, 4), tf.int32, little_endian=True)[0]
        return tf.abs(tf.cast(h, tf.int64)), tf.abs(tf.cast(w, tf.int64)), image_bytes

    def unknown() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return tf.constant(0, tf.int64), tf.constant(0, tf.int64), image_bytes

    is_jpeg = tf.logical_and(length >= 4, tf.strings.substr(image_bytes, 0, 2) == b"\xff\xd8")
    is_png = tf.logical_and(length >= 24, head == b"\x89PNG")
    is_gif = tf.logical_and(length >= 10, tf.strings.substr(image_bytes, 0, 3) == b"GIF")
    is_bmp = tf.logical_and(length >= 26, tf.strings.substr(image_bytes, 0, 2) == b"BM")
    h, w, payload = tf.case([(is_jpeg, jpeg), (is_png, png), (is_gif, gif), (is_bmp, bmp)], default=unknown,
                            exclusive=False)
    known = tf.reduce_any(tf.stack([is_jpeg, is_png, is_gif, is_bmp]))
    return known, h, w, payload


def declared_size(image_bytes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Reads an encoded image's declared height and width from its header, without decoding it.

    For a GIF this is the larger of its logical screen and its first frame (the decoder allocates the frame).

    Args:
        image_bytes: A scalar string tensor holding a JPEG, PNG, GIF or BMP file.

    Returns:
        (known, height, width): `known` is False for an unrecognised format or a header too short to read, and
        the sizes are then 0.
    """
    known, h, w, _ = _inspect(tf.convert_to_tensor(image_bytes, tf.string))
    return known, h, w


def decode_rgb(image_bytes: tf.Tensor, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """Decodes a JPEG, PNG, GIF (first frame) or BMP file to RGB uint8 [H, W, 3].

    Greyscale and CMYK JPEGs, greyscale and RGBA PNGs become RGB. Images declaring more than `max_pixels` pixels
    (for a GIF: its screen or its first frame) are refused from their header, before any pixel is decoded; of a GIF
    only the first frame reaches the decoder.

    Raises:
        tf.errors.InvalidArgumentError: for an empty string, an unrecognised format, a corrupt or truncated file,
            or too many pixels; the message says which.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    known, h, w, payload = _inspect(image_bytes)
    checks = [
        tf.debugging.assert_greater(tf.strings.length(image_bytes), 0,
                                    message="image_bytes is empty: expected an encoded JPEG, PNG, GIF or BMP image"),
        tf.debugging.Assert(known, ["image_bytes is not a JPEG, PNG, GIF or BMP image (unrecognised header)"]),
        tf.debugging.Assert(h * w <= max_pixels,
                            ["image declares", h, "x", w, f"pixels, above the limit of {max_pixels} pixels"]),
    ]
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(payload, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def resize_to_square(image: tf.Tensor, size: int = 256) -> tf.Tensor:
    """The paper's offline step: rescale so that the shorter side is `size`, then take the central square.

    An image longer than MAX_ASPECT times its shorter side is first cut to that length around its centre, which
    bounds the work and memory of the resize (see MAX_ASPECT).

    Args:
        image: uint8 [H, W, 3].
        size: The side of the result.

    Returns:
        uint8 [size, size, 3] (antialiased bilinear resampling, rounded).
    """
    shape = tf.shape(image)
    longest = MAX_ASPECT * tf.minimum(shape[0], shape[1])
    cut_h, cut_w = tf.maximum(shape[0] - longest, 0) // 2, tf.maximum(shape[1] - longest, 0) // 2
    image = image[cut_h:cut_h + longest, cut_w:cut_w + longest, :]
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    scale = size / tf.minimum(h, w)
    new_h = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
    resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    top = (new_h - size) // 2
    left = (new_w - size) // 2
    square = resized[top:top + size, left:left + size, :]
    square = tf.cast(tf.clip_by_value(tf.round(square), 0.0, 255.0), tf.uint8)
    square.set_shape([size, size, 3])
    return square


def subtract_mean(image: tf.Tensor, mean: tf.Tensor) -> tf.Tensor:
    """float32 image minus the training mean: a [S, S, 3] mean image or a [3] per-channel mean (0-255 scale)."""
    return tf.cast(image, tf.float32) - tf.cast(mean, tf.float32)


def patch_mean(mean: np.ndarray, height: int | None, width: int | None) -> np.ndarray:
    """The mean to subtract from a patch already cut to height x width, float32 [h, w, 3] or [1, 1, 3].

    A mean image gives its central patch of that size (what `center_patches` subtracts from the centre crop);
    a per-channel mean, an unknown size or one larger than the mean image gives the per-channel mean.
    """
    mean = np.asarray(mean, np.float32)
    if mean.ndim == 3 and height is not None and width is not None and height <= mean.shape[0] \
            and width <= mean.shape[1]:
        top, left = (mean.shape[0] - height) // 2, (mean.shape[1] - width) // 2
        return mean[top:top + height, left:left + width]
    return mean.reshape(-1, mean.shape[-1]).mean(axis=0).reshape(1, 1, -1)


def center_crop(images: tf.Tensor, crop: int) -> tf.Tensor:
    """The central crop x crop patch of [..., H, W, C] images (the offset rounds down when H - crop is odd)."""
    shape = tf.shape(images)
    top = (shape[-3] - crop) // 2
    left = (shape[-2] - crop) // 2
    return images[..., top:top + crop, left:left + crop, :]


def ten_crop(image: tf.Tensor, crop: int) -> tf.Tensor:
    """The paper's ten test patches of one [H, W, C] image, stacked as [10, crop, crop, C] in `TEN_CROP_ORDER`."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    corners = [((h - crop) // 2, (w - crop) // 2), (0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop)]
    patches = tf.stack([image[top:top + crop, left:left + crop, :] for top, left in corners])
    return tf.concat([patches, tf.reverse(patches, axis=[2])], axis=0)


def eval_square(image_bytes: tf.Tensor, size: int = 256, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """Encoded image -> the uint8 [size, size, 3] square that evaluation crops from (decode, resize, centre)."""
    return resize_to_square(decode_rgb(image_bytes, max_pixels), size)


# ---------------------------------------------------------------------------------------------------------------------
# Batches: what a trained model (`alexnet_tf.inference.trained`) and the export's signatures run on encoded files.

def _check_batch(n: tf.Tensor, max_batch: int | None) -> list[tf.Operation]:
    if max_batch is None:
        return []
    return [tf.debugging.assert_less_equal(
        n, tf.cast(max_batch, n.dtype),
        message=f"too many images in one request: at most {max_batch} are accepted; split the batch")]


def squares_from_bytes(image_bytes: tf.Tensor, size: int, max_pixels: int = MAX_PIXELS,
                       max_batch: int | None = None) -> tf.Tensor:
    """Encoded images string [N] -> the uint8 [N, size, size, 3] squares evaluation crops from.

    Args:
        image_bytes: Encoded JPEG, PNG, GIF or BMP files.
        size: The side of the squares (data.image_size).
        max_pixels: Images declaring more pixels are refused from their header.
        max_batch: More images than this are refused (None: no limit; the export sets one per request).

    Raises (when run):
        tf.errors.InvalidArgumentError: for more than `max_batch` images or any image that `decode_rgb` refuses
            (empty, unknown format, corrupt, truncated, more than `max_pixels` pixels).
    """
    with tf.control_dependencies(_check_batch(tf.size(image_bytes), max_batch)):
        image_bytes = tf.identity(image_bytes)
    # Two images in flight at a time bounds a request's memory: a decoded image of max_pixels and its float copy in
    # the resize are about 16 bytes a pixel (1 GB at the default limit).
    return tf.map_fn(lambda b: eval_square(b, size, max_pixels), image_bytes,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8), parallel_iterations=2)


def squares_from_images(images: tf.Tensor, size: int, max_batch: int | None = None) -> tf.Tensor:
    """Decoded uint8 images [N, H, W, 3] of any size -> the uint8 [N, size, size, 3] squares."""
    shape = tf.shape(images)
    checks = _check_batch(shape[0], max_batch) + [
        tf.debugging.assert_positive(shape[1] * shape[2],
                                     message="images must have a height and width of at least 1 pixel")]
    with tf.control_dependencies(checks):
        images = tf.identity(images)
    return tf.map_fn(lambda im: resize_to_square(im, size), images,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8), parallel_iterations=2)


def ten_crop_patches(squares: tf.Tensor, mean: np.ndarray, crop: int) -> tf.Tensor:
    """uint8 squares [N, S, S, 3] -> float32 [N, 10, crop, crop, 3]: mean subtracted, each image's ten patches in
    `TEN_CROP_ORDER` (the layout `alexnet_tf.models.crops` and `data.eval_dataset(..., ten_crop=True)` use)."""
    centred = subtract_mean(squares, tf.constant(mean, tf.float32))
    return tf.map_fn(lambda im: ten_crop(im, crop), centred,
                     fn_output_signature=tf.TensorSpec([10, crop, crop, 3], tf.float32))


def center_patches(squares: tf.Tensor, mean: np.ndarray, crop: int) -> tf.Tensor:
    """uint8 squares [N, S, S, 3] -> float32 [N, crop, crop, 3]: mean subtracted, the central patch."""
    patches = center_crop(subtract_mean(squares, tf.constant(mean, tf.float32)), crop)
    patches.set_shape([None, crop, crop, 3])
    return patches

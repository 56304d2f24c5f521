"""Training-only randomness: random crops, reflections and PCA lighting, drawn with stateless seeded ops.

The work is split where it is cheapest. In `tf.data` (uint8, per image): the random draws, a fused
decode-and-crop of the JPEG and the reflection. In the train step (float32, per batch, on the accelerator):
`network_input` adds the PCA lighting and subtracts the mean image cropped and reflected exactly like the image.
Both halves use the same draws, so the result equals the paper's order of operations (mean-subtract the 256x256
image, crop, reflect, add lighting): every step is linear in the pixels or a pure rearrangement of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from alexnet_tf.config import MEAN_CHOICES, PCA_SCALE_CHOICES

if TYPE_CHECKING:
    from alexnet_tf.data.stats import DatasetStats


def element_seed(seed: int, epoch: int | tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """The stateless seed [2] (int64) of element `index` of epoch `epoch` of a run seeded with `seed`."""
    base = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def draw_augmentation(seed: tf.Tensor, image_size: int, crop_size: int, flip: bool = True,
                      pca_std: float = 0.1, random_crop: bool = True) -> dict[str, tf.Tensor]:
    """The random choices for one image, from a stateless seed [2].

    Returns:
        {"offset": int32 [2] (top, left) uniform in [0, image_size - crop_size], or the centre crop's when
        `random_crop` is off, "flip": bool [] (True with probability 1/2, always False when `flip` is off),
        "alpha": float32 [3] ~ N(0, pca_std^2)}.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if random_crop:
        offset = tf.random.stateless_uniform([2], seeds[0], minval=0, maxval=image_size - crop_size + 1,
                                             dtype=tf.int32)
    else:  # the offset of preprocess.center_crop
        offset = tf.fill([2], (image_size - crop_size) // 2)
    if flip:
        do_flip = tf.random.stateless_uniform([], seeds[1]) < 0.5
    else:
        do_flip = tf.constant(False)
    alpha = tf.random.stateless_normal([3], seeds[2], stddev=pca_std) if pca_std > 0 else tf.zeros([3])
    return {"offset": offset, "flip": do_flip, "alpha": alpha}


def decode_and_crop(jpeg_bytes: tf.Tensor, offset: tf.Tensor, crop_size: int) -> tf.Tensor:
    """Decodes only the crop_size x crop_size window at `offset` (top, left) of a JPEG: uint8 [crop, crop, 3].

    libjpeg skips the rows below the window and the blocks beside it, which is most of the speed of training
    from prepared shards. The pixels equal decoding the whole image and slicing it (`crop`).
    """
    window = tf.stack([offset[0], offset[1], crop_size, crop_size])
    image = tf.image.decode_and_crop_jpeg(jpeg_bytes, window, channels=3)
    image.set_shape([crop_size, crop_size, 3])
    return image


def crop(image: tf.Tensor, offset: tf.Tensor, crop_size: int) -> tf.Tensor:
    """The crop_size x crop_size window at `offset` (top, left) of an [H, W, C] image."""
    return image[offset[0]:offset[0] + crop_size, offset[1]:offset[1] + crop_size, :]


def reflect(images: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
    """Reflects left-right where `flip` is True: one image [H, W, C] with a scalar flag, or a batch
    [B, H, W, C] with flags [B]."""
    flip = tf.convert_to_tensor(flip, tf.bool)
    if flip.shape.rank == 0:
        # A branch, not a select: only the reflected half of the images pays for the reversal.
        return tf.cond(flip, lambda: tf.reverse(images, axis=[-2]), lambda: tf.identity(images))
    return tf.where(tf.reshape(flip, [-1, 1, 1, 1]), tf.reverse(images, axis=[-2]), images)


def lighting_offset(alpha: tf.Tensor, eigvals: tf.Tensor, eigvecs: tf.Tensor) -> tf.Tensor:
    """The paper's PCA colour offset [p1 p2 p3] . [a1 l1, a2 l2, a3 l3]^T for alphas [..., 3]: an RGB [..., 3].

    `eigvals` are the l_i used (see `lighting_scale`); column i of `eigvecs` is p_i."""
    weights = tf.cast(alpha, tf.float32) * tf.cast(eigvals, tf.float32)
    return tf.einsum("ij,...j->...i", tf.cast(eigvecs, tf.float32), weights)


def pca_lighting(images: tf.Tensor, alpha: tf.Tensor, eigvals: tf.Tensor, eigvecs: tf.Tensor) -> tf.Tensor:
    """Adds the PCA colour offset of `alpha` to every pixel: image [H, W, 3] with alpha [3], or a batch
    [B, H, W, 3] with alphas [B, 3]. Returns float32 (no clipping: the network sees mean-subtracted values)."""
    offset = lighting_offset(alpha, eigvals, eigvecs)
    return tf.cast(images, tf.float32) + offset[..., None, None, :]


def crop_mean_image(mean_image: tf.Tensor, offset: tf.Tensor, flip: tf.Tensor, crop_size: int) -> tf.Tensor:
    """The mean image [S, S, 3] cut at each image's crop offset [B, 2] and reflected where flip [B]:
    float32 [B, crop, crop, 3], so that subtracting it equals subtracting the mean before cropping."""
    mean_image = tf.cast(mean_image, tf.float32)

    def one(args: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        # One slice per image moves only the output's bytes (on a CPU about twice as fast as two gathers).
        top_left, do_flip = args
        return reflect(crop(mean_image, tf.cast(top_left, tf.int32), crop_size), do_flip)

    return tf.map_fn(one, (offset, tf.convert_to_tensor(flip, tf.bool)), fn_output_signature=tf.float32)


def lighting_scale(eigvals: np.ndarray | tf.Tensor, pca_scale: str = "stddev") -> tf.Tensor:
    """What multiplies each alpha_i along p_i: sqrt(eigenvalue) for "stddev" (the authors' cuda-convnet code),
    the eigenvalue itself for "eigenvalue" (the paper's text read literally)."""
    eigvals = tf.cast(eigvals, tf.float32)
    if pca_scale == "stddev":
        return tf.sqrt(tf.maximum(eigvals, 0.0))
    if pca_scale == "eigenvalue":
        return eigvals
    raise ValueError(f"data.pca_scale: got {pca_scale!r}; allowed: {', '.join(map(repr, PCA_SCALE_CHOICES))}")


def network_input(batch: dict[str, tf.Tensor], stats: "DatasetStats", mean: str = "image",
                  pca_scale: str = "stddev") -> tf.Tensor:
    """The float32 network input of a training batch from `train_dataset`: lighting added, mean subtracted.

    A pure TF function for the train step (inside its tf.function the statistics become constants). Call it as
    `network_input(batch, prepared.stats, data_cfg.mean, data_cfg.pca_scale)`. With data.pca_std = 0 the alphas
    are zero and no lighting is added.

    Args:
        batch: {"image": uint8 [B, crop, crop, 3] (cropped and reflected), "offset": int [B, 2],
            "flip": bool [B], "alpha": float32 [B, 3]}.
        stats: The dataset statistics (`mean_image`, `channel_mean`, `eigvals`, `eigvecs`).
        mean: "image" subtracts the mean image at the same crop and reflection (the paper); "channel" the
            per-channel mean.
        pca_scale: See `lighting_scale`.

    Returns:
        float32 [B, crop, crop, 3].
    """
    images = batch["image"]
    x = pca_lighting(images, batch["alpha"], lighting_scale(stats.eigvals, pca_scale), stats.eigvecs)
    if mean == "image":
        crop_size = images.shape[1] if images.shape[1] is not None else tf.shape(images)[1]
        return x - crop_mean_image(stats.mean_image, batch["offset"], batch["flip"], crop_size)
    if mean == "channel":
        return x - tf.cast(stats.channel_mean, tf.float32)
    raise ValueError(f"data.mean: got {mean!r}; allowed: {', '.join(map(repr, MEAN_CHOICES))}")

"""Keras layers of the paper's network: local response normalisation, and layers pinned to a tower's device.

Keras 3 does not keep a `tf.device` scope that surrounds functional-model construction: the scope must be entered
when the layer creates its variables (`build`) and every time it runs (`call`). `OnDevice` does both, so a layer of
tower A keeps its kernels and its ops on tower A's device whether it runs eagerly, in a `tf.function` or in a
SavedModel. With `device=None` the same layers are unpinned, and their variables are named identically, so a
checkpoint moves freely between a pinned and an unpinned model.

Every layer computes with `keras.ops`, so the model also builds, runs, jits and trains on Keras 3's JAX and PyTorch
backends. Device pinning is TensorFlow's `tf.device`, so it applies only on the TensorFlow backend; elsewhere the
`device` of a layer is kept in its config and ignored.

`import alexnet_tf` registers these layers with Keras (see `alexnet_tf.keras_registration`), so a `.keras` file
that holds them loads after that import alone.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf


@keras.saving.register_keras_serializable(package="alexnet_tf")
class LocalResponseNormalization(keras.layers.Layer):
    """The paper's local response normalisation across channels (section 3.3).

    b[i] = a[i] / (k + alpha * sum_{j = max(0, i - n/2)}^{min(N - 1, i + n/2)} a[j]^2) ^ beta

    `alpha` is the paper's: it multiplies the plain sum of squares. Caffe and PyTorch divide their alpha by n, so
    their 5e-4 is this layer's 1e-4. The window is cut at the first and last channels, as the sum's bounds say.

    The input may also be a list of maps (both towers'): they are normalised as one concatenation, as Caffe's
    single-device LRN does across the tower boundary, and `keep` selects the channels [start, stop) of that
    concatenation that the layer returns (its own tower's), so each tower computes only its own outputs.

    Args:
        k: The additive constant (2 in the paper).
        n: The number of adjacent channels in the window, odd (5 in the paper).
        alpha: The scale of the sum of squares (1e-4 in the paper).
        beta: The exponent (0.75 in the paper).
        keep: The channels [start, stop) of the (concatenated) input to return; None returns all.
    """

    def __init__(self, k: float = 2.0, n: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 keep: Sequence[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n < 1 or n % 2 != 1:
            raise ValueError(f"LocalResponseNormalization: n must be an odd number >= 1, got {n}")
        if keep is not None and not (len(keep) == 2 and 0 <= keep[0] < keep[1]):
            raise ValueError(f"LocalResponseNormalization: keep must be [start, stop) with 0 <= start < stop, "
                             f"got {keep!r}")
        self.k, self.n, self.alpha, self.beta = float(k), int(n), float(alpha), float(beta)
        self.keep = None if keep is None else (int(keep[0]), int(keep[1]))

    def call(self, inputs: Any) -> Any:
        if isinstance(inputs, (list, tuple)):
            inputs = ops.concatenate(list(inputs), axis=-1)
        # The window sums are one matmul with a banded 0/1 matrix (band[j, i] = 1 when |i - j| <= n/2, which cuts the
        # window at the first and last channels as the formula's bounds do), and the power -0.75 is two rsqrts.
        # This computes the same as `tf.nn.local_response_normalization(depth_radius=n//2, bias=k, alpha, beta)`
        # (which also uses the paper's undivided alpha), but its gradient is about twice as fast on CPU, where TF's
        # LRNGrad kernel took about a fifth of a training step. It runs in float32 whatever the layer's precision.
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        x = inputs if dtype == "float32" else ops.cast(inputs, "float32")
        channels = int(x.shape[-1])
        start, stop = self.keep or (0, channels)
        if stop > channels:
            raise ValueError(f"{self.name}: keep {self.keep} exceeds the input's {channels} channels")
        index = np.arange(channels)
        # Only the kept channels' columns of the band: a tower normalising both towers' maps sums its own windows.
        band = ops.convert_to_tensor((np.abs(index[:, None] - index[None, start:stop]) <= self.n // 2)
                                     .astype(np.float32))
        # As a 2-D matmul: about 15% faster on CPU than broadcasting over the batch and spatial axes.
        sums = ops.matmul(ops.reshape(ops.square(x), (-1, channels)), band)
        x = x[..., start:stop]
        sums = ops.reshape(sums, ops.shape(x))
        d = self.k + self.alpha * sums
        if self.beta == 0.75:
            scale = ops.rsqrt(d) * ops.rsqrt(ops.sqrt(d))
        elif self.beta == 0.5:
            scale = ops.rsqrt(d)
        else:
            scale = ops.power(d, -self.beta)
        y = x * scale
        return y if dtype == "float32" else ops.cast(y, dtype)

    def compute_output_shape(self, input_shape: Any) -> Sequence[int | None]:
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            channels = sum(shape[-1] for shape in input_shape)
            input_shape = (*input_shape[0][:-1], channels)
        if self.keep is None:
            return tuple(input_shape)
        return (*input_shape[:-1], self.keep[1] - self.keep[0])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "k": self.k, "n": self.n, "alpha": self.alpha, "beta": self.beta,
                "keep": self.keep}


def device_scope(device: str | None) -> contextlib.AbstractContextManager:
    """`tf.device(device)` on the TensorFlow backend; no scope at all for an unpinned layer or another backend."""
    if device and keras.backend.backend() == "tensorflow":
        return tf.device(device)
    return contextlib.nullcontext()


class OnDevice:
    """Mixin that creates a layer's variables and runs its ops on one device."""

    def __init__(self, *args: Any, device: str | None = None, **kwargs: Any) -> None:
        # Some layers make state in __init__ (Dropout's seed generator), so that goes on the device too.
        with device_scope(device):
            super().__init__(*args, **kwargs)
        self.device = device or None

    def build(self, input_shape: Any) -> None:
        with device_scope(self.device):
            super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        # Keras reads `training` from this signature; only the base layers that take it (Dropout) are given it.
        with device_scope(self.device):
            if "training" in inspect.signature(super().call).parameters:
                return super().call(inputs, training=training)
            return super().call(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "device": self.device}


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerConv2D(OnDevice, keras.layers.Conv2D):
    """A Conv2D on one tower's device."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerDense(OnDevice, keras.layers.Dense):
    """A Dense layer on one tower's device."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerConcatenate(OnDevice, keras.layers.Concatenate):
    """Both towers' maps joined on one tower's device: where the paper's two GPUs exchange data."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerMaxPooling2D(OnDevice, keras.layers.MaxPooling2D):
    """Max-pooling on one tower's device."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerZeroPadding2D(OnDevice, keras.layers.ZeroPadding2D):
    """Zero padding on one tower's device."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerFlatten(OnDevice, keras.layers.Flatten):
    """Flatten on one tower's device."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerDropout(OnDevice, keras.layers.Dropout):
    """Dropout on one tower's device."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class TowerLRN(OnDevice, LocalResponseNormalization):
    """Local response normalisation on one tower's device: of its own maps, or (given both towers' maps and `keep`)
    of its own channels normalised across both towers."""


@keras.saving.register_keras_serializable(package="alexnet_tf")
class MeanSubtraction(keras.layers.Layer):
    """Subtracts a fixed training mean from RGB pixels (0-255): the model's own preprocessing, as in Keras's
    ConvNeXt and EfficientNet, so its users feed raw pixels. Any numeric input is taken as float32.

    The mean is a non-trainable weight (so `.keras` and `.weights.h5` files carry it and fine-tuning keeps it) of
    shape [H, W, C] (a mean image) or [1, 1, C] (one value per channel).

    Args:
        shape: The mean's shape, [H, W, C] or [1, 1, C].
    """

    def __init__(self, shape: Sequence[int] = (1, 1, 3), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean_shape = tuple(int(s) for s in shape)
        if len(self.mean_shape) != 3:
            raise ValueError(f"MeanSubtraction: the mean's shape must be [H, W, C], got {self.mean_shape}")
        self.mean = self.add_weight(shape=self.mean_shape, initializer="zeros", trainable=False, name="mean")

    def call(self, inputs: Any) -> Any:
        return ops.cast(inputs, "float32") - ops.cast(self.mean, "float32")

    def compute_output_shape(self, input_shape: Any) -> Sequence[int | None]:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": self.mean_shape}

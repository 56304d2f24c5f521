"""Where the computation runs: the one place that decides the towers' devices.

The paper split the network over two GPUs, tower A on the first and tower B on the second. Here:
- explicit device names from the config win (they must exist on this machine);
- otherwise two or more GPUs give `/GPU:0` and `/GPU:1`;
- one GPU, or none, puts both towers on that one device (no error: the same model, just not model-parallel);
- an unpinned placement (for export and for data-parallel replicas) puts no device on anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import tensorflow as tf

from alexnet_tf.config import DISTRIBUTE_CHOICES, PRECISION_CHOICES
from alexnet_tf.core.cpu import warn_if_bf16_loses
from alexnet_tf.errors import DeviceError


@dataclass(frozen=True)
class TowerPlacement:
    """The devices of tower A and tower B; None means unpinned."""

    tower_a: str | None
    tower_b: str | None

    @property
    def pinned(self) -> bool:
        return self.tower_a is not None

    @property
    def split(self) -> bool:
        """True when the towers run on two different devices (model parallelism, as in the paper)."""
        return self.pinned and self.tower_a != self.tower_b


UNPINNED = TowerPlacement(None, None)


def _canonical(name: str) -> str:
    """'/GPU:1', 'gpu:1' or '/job:localhost/replica:0/task:0/device:GPU:1' -> 'GPU:1'."""
    tail = name.strip().split("/")[-1]
    tail = tail.split("device:")[-1]
    kind, _, index = tail.partition(":")
    return f"{kind.upper()}:{index or '0'}"


def available_devices() -> list[str]:
    """This process's logical devices, canonically named ('CPU:0', 'GPU:1', ...)."""
    return [_canonical(d.name) for d in tf.config.list_logical_devices()]


def tower_placement(requested: Sequence[str] = (), pin: bool = True) -> TowerPlacement:
    """Decides the towers' devices.

    Args:
        requested: Exactly two device names (e.g. ["/GPU:0", "/GPU:1"]), or empty to decide from the machine.
        pin: False returns the unpinned placement whatever the machine has.

    Raises:
        DeviceError: when a requested device does not exist here; the message lists the devices that do.
    """
    if not pin:
        return UNPINNED
    have = available_devices()
    if requested:
        if len(requested) != 2:
            raise DeviceError(f"runtime.tower_devices: give exactly two device names, got {list(requested)!r}")
        for name in requested:
            if _canonical(name) not in have:
                raise DeviceError(f"runtime.tower_devices: device {name!r} does not exist on this machine; "
                                  f"available: {', '.join('/' + d for d in have)}")
        return TowerPlacement("/" + _canonical(requested[0]), "/" + _canonical(requested[1]))
    gpus = [d for d in have if d.startswith("GPU:")]
    if len(gpus) >= 2:
        return TowerPlacement("/GPU:0", "/GPU:1")
    only = "/GPU:0" if gpus else "/CPU:0"
    return TowerPlacement(only, only)


def configure_logical_cpus(count: int) -> None:
    """Splits the physical CPU into `count` logical devices (stand-ins for GPUs in tests and demos).

    Must run before TensorFlow initialises its devices; afterwards it raises RuntimeError.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def logical_cpus_needed(tower_devices: Sequence[str]) -> int:
    """How many logical CPU devices the tower devices name (e.g. /CPU:1 needs two)."""
    indices = [int(d.rsplit(":", 1)[1]) for d in tower_devices
               if "CPU:" in d.upper() and d.rsplit(":", 1)[1].isdigit()]
    return max(indices, default=0) + 1


def configure_tower_cpus(tower_devices: Sequence[str]) -> None:
    """Makes the logical CPU devices that `tower_devices` names (stand-ins for the paper's two GPUs), once.

    Raises:
        DeviceError: when TensorFlow set up its devices already, with fewer CPUs than named.
    """
    count = logical_cpus_needed(tower_devices)
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    if count <= len(tf.config.get_logical_device_configuration(cpu) or ()):
        return
    try:
        configure_logical_cpus(count)
    except RuntimeError:  # TensorFlow ran an op already: its devices are fixed
        raise DeviceError(f"runtime.tower_devices names {', '.join(tower_devices)}, but TensorFlow set up its "
                          f"devices already: {', '.join('/' + d for d in available_devices())}; train in a fresh "
                          f"process, before any other TensorFlow work, or name devices that exist") from None


def set_precision(policy: str) -> None:
    """Sets the Keras dtype policy for models built afterwards: "float32", "mixed_bfloat16" or "mixed_float16".

    Mixed policies compute in 16 bits and keep variables in float32; "mixed_float16" also needs loss scaling
    (`optim.paper_sgd` wraps the optimiser for it).
    """
    if policy not in PRECISION_CHOICES:
        raise ValueError(f"runtime.precision: got {policy!r}; allowed: {', '.join(map(repr, PRECISION_CHOICES))}")
    keras.mixed_precision.set_global_policy(policy)
    warn_if_bf16_loses(policy, gpus=len(tf.config.list_physical_devices("GPU")))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras; `deterministic` also makes TF's ops bitwise reproducible.

    Op determinism makes some ops slower and others (those without a deterministic kernel) raise an error, so it
    is off unless asked for (`runtime.deterministic`).
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def make_strategy(distribute: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy named by `runtime.distribute`.

    "none" is TensorFlow's default strategy (one replica; the towers are pinned by `tower_placement`); "mirrored"
    replicates the whole, unpinned model on every local GPU (or the CPU); "multi_worker" does the same across the
    machines named in the `TF_CONFIG` environment variable.
    """
    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribute == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"runtime.distribute: got {distribute!r}; allowed: {', '.join(map(repr, DISTRIBUTE_CHOICES))}")

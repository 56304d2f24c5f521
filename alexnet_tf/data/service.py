"""The training input pipeline on a tf.data service: a dispatcher and workers (other machines' CPUs) decode and
augment the batches that the training process consumes.

One training job can only decode and augment on its own CPUs; an accelerator trains AlexNet faster than a few cores
feed it. With `data.service=grpc://HOST:PORT` the whole per-epoch pipeline of `pipeline.train_dataset` (reading the
shards, shuffling, decode-and-crop, the augmentation draws, batching) runs on the service's workers: the pipeline's
graph is sent to them, so they run the project's own preprocessing from the TensorFlow they have, reading the shards
at the same path (a shared file system or a copy at the same place).

Two ways to split the work:
- `deterministic=False` (the default): dynamic sharding (`ShardingPolicy.DYNAMIC`): the dispatcher hands out the
  shard files to whichever worker asks; workers may join and leave; batches arrive in no fixed order.
- `deterministic=True` (with `runtime.deterministic`): static sharding by batch (`ShardingPolicy.HINT`): worker k
  of N makes batches k, k + N, k + 2N, ... of exactly the local pipeline's epoch, each batch tagged with its number,
  and the trainer puts them back in order. The training then sees the same batches in the same order as without the
  service. This needs a dispatcher started with the fixed list of its workers (`python -m alexnet_tf.dataservice
  dispatcher --workers ...`).
"""

from __future__ import annotations

from typing import Callable, Iterator

import tensorflow as tf

_service = tf.data.experimental.service


def served_batches(records: tf.data.Dataset, element: Callable, batch_size: int, drop_remainder: bool,
                   address: str, deterministic: bool) -> tf.data.Dataset:
    """The training batches of `pipeline.train_dataset`, made by the tf.data service at `address`.

    Args:
        records: The epoch's (index, encoded record) pairs, shuffled: cheap to make, so every worker makes them all.
        element: (index, record) -> (augmented image and draws, label), the costly part (decoding).
        batch_size: Images per batch.
        drop_remainder: Leave out the last, smaller batch.
        address: The dispatcher, grpc://HOST:PORT.
        deterministic: Static sharding by batch and the local order restored (see the module's docstring);
            otherwise dynamic sharding of the input files.
    """
    if not deterministic:
        made = records.map(element, num_parallel_calls=tf.data.AUTOTUNE)
        made = made.batch(batch_size, drop_remainder=drop_remainder)
        # Each worker drops its own last partial batch, so a pass may hold a few batches fewer than the epoch's
        # steps: passes repeat (each a new job), and the trainer takes the epoch's number of steps.
        return made.apply(_service.distribute(_service.ShardingPolicy.DYNAMIC, address)).repeat()
    hint = tf.data.experimental.SHARD_HINT
    # Worker k of N keeps the blocks of records of batches k, k + N, ... and decodes only those.
    own = records.batch(batch_size, drop_remainder=drop_remainder).shard(hint, hint).unbatch()
    made = own.map(lambda i, r: (i // batch_size, element(i, r)), num_parallel_calls=tf.data.AUTOTUNE,
                   deterministic=True)
    made = made.batch(batch_size, drop_remainder=drop_remainder).map(lambda numbers, b: (numbers[0], b))
    return in_order(made.apply(_service.distribute(_service.ShardingPolicy.HINT, address)))


def in_order(numbered: tf.data.Dataset) -> tf.data.Dataset:
    """(number, element) pairs arriving in any order -> the elements in the order of their numbers, 0, 1, 2, ...

    The workers each make their batches in order, so the pairs held back are at most those that the faster
    workers made ahead of the slowest one.
    """
    spec = numbered.element_spec[1]

    def ordered() -> Iterator:
        held, want = {}, 0
        for number, element in numbered:
            held[int(number)] = element
            while want in held:
                yield held.pop(want)
                want += 1
        if held:
            raise RuntimeError(f"the tf.data service delivered batches {sorted(held)[:5]}... but never batch {want}")

    return tf.data.Dataset.from_generator(ordered, output_signature=spec)


def dispatcher(port: int, workers: list[str] | None = None, work_dir: str = "") -> _service.DispatchServer:
    """Starts a dispatcher on `port` (all interfaces); `workers` (HOST:PORT each) fixes its worker list, which the
    deterministic (static) sharding needs; `work_dir` keeps its journal so that a restarted dispatcher resumes."""
    config = _service.DispatcherConfig(port=port, worker_addresses=workers or None, work_dir=work_dir or None,
                                       fault_tolerant_mode=bool(work_dir))
    return _service.DispatchServer(config)


def worker(dispatcher_address: str, port: int, address: str = "") -> _service.WorkerServer:
    """Starts a worker on `port` that registers with the dispatcher (HOST:PORT, without grpc://); `address` is how
    the dispatcher and the trainer reach it (HOST:PORT; it must match an entry of the dispatcher's --workers)."""
    config = _service.WorkerConfig(dispatcher_address=dispatcher_address, worker_address=address or None, port=port)
    return _service.WorkerServer(config)

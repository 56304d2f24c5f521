"""Serving benchmark: images/s and latency (median, p99) of each exported signature at batch 1 and a larger batch.

    python benchmarks/serving.py [--run RUN_DIR] [--batches 1 8] [--repeats 20] [--max-seconds 20]

Without --run it exports the paper's full-size network (random weights: speed does not depend on them, 1000
classes, 256 -> 224) to a temporary folder. The SavedModel is run through the TF1 session loader, the path
tensorflow_model_server uses. Besides whole signatures it times, with the same functions the export uses:
- decode + preprocess alone (decode, resize, mean, crops: no network), for ten crops and for the centre crop;
- the network alone on N*10 and on N patches, whose ratio is what ten-crop evaluation costs over one crop (the ten
  patches run as one batch, so it should be close to 10 and no more).
Input images are synthetic 500x375 JPEGs (the typical ILSVRC size). The measurements of one batch size are timed in
turns, so that background load on a shared machine affects all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout, too

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from alexnet_tf.data import preprocess  # noqa: E402
from alexnet_tf.data.vocab import Vocabulary  # noqa: E402
from alexnet_tf.models.alexnet import build_alexnet  # noqa: E402
from alexnet_tf.runs.rundir import load_run  # noqa: E402
from alexnet_tf.serving.contract import MAX_BATCH  # noqa: E402
from alexnet_tf.serving.savedmodel import export_model  # noqa: E402
from alexnet_tf.serving.signatures import ServingSpec, serving_spec  # noqa: E402


def synthetic_jpegs(count: int, height: int = 375, width: int = 500, seed: int = 0) -> list[bytes]:
    """Photo-sized JPEGs with smooth structure and noise (JPEG decode time depends on the content a little)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        coarse = rng.uniform(0, 255, (height // 25 + 1, width // 25 + 1, 3)).astype(np.float32)
        image = tf.image.resize(coarse, (height, width), method="bicubic").numpy() + rng.normal(0, 10, (height, width,
                                                                                                         3))
        out.append(tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90).numpy())
    return out


def time_round_robin(calls: list[Callable[[], object]], repeats: int, max_seconds: float) -> list[np.ndarray]:
    """Latencies in seconds of each call, timed in turns (one of each per round, after two warm-up rounds).

    Taking turns exposes every measurement to the same background load, so their ratios hold even on a shared
    machine. Stops after `repeats` rounds, or after `max_seconds` once at least 3 rounds are done.
    """
    for _ in range(2):
        for fn in calls:
            fn()
    latencies: list[list[float]] = [[] for _ in calls]
    start = time.perf_counter()
    rounds = tqdm(total=repeats, desc="rounds", unit="round", leave=False)
    while rounds.n < repeats and (rounds.n < 3 or time.perf_counter() - start < max_seconds):
        for fn, out in zip(calls, latencies):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        rounds.update()
    rounds.close()
    return [np.asarray(x) for x in latencies]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run directory to export (default: the full-size network, random weights)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (images per request)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="time budget per batch size, after at least 3 rounds (the measurements take turns)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]

    if args.run:
        run = load_run(args.run)
        model, spec = run.restore_model(), serving_spec(run)
    else:
        model = build_alexnet()
        spec = ServingSpec(mean=np.full((256, 256, 3), 115.0, np.float32), image_size=256, crop_size=224,
                                  vocabulary=Vocabulary.from_wnids([f"n{i:08d}" for i in range(1000)]))
    spec = dataclasses.replace(spec, max_batch=max(max(args.batches), MAX_BATCH))
    # The full-size export is about 250 MB: it is removed at the end, whatever happens.
    workdir = tempfile.mkdtemp(prefix="alexnet_serving_bench_")
    try:
        path = export_model(model, spec, os.path.join(workdir, "alexnet"), version=1)

        graph = tf.Graph()
        sess = tf.compat.v1.Session(graph=graph)
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)

        def signature_call(name: str, feed: object) -> Callable[[], object]:
            signature = meta_graph.signature_def[name]
            (input_info,) = signature.inputs.values()
            fetches = [info.name for info in signature.outputs.values()]
            return lambda: sess.run(fetches, {input_info.name: feed})

        size, crop = spec.image_size, spec.crop_size
        ten_preprocess = tf.function(lambda b: preprocess.ten_crop_patches(
            preprocess.squares_from_bytes(b, size, spec.max_pixels, spec.max_batch), spec.mean, crop))
        center_preprocess = tf.function(lambda b: preprocess.center_patches(
            preprocess.squares_from_bytes(b, size, spec.max_pixels, spec.max_batch), spec.mean, crop))
        network = tf.function(lambda x: model(x, training=False))

        rows, ratios = [], []
        jpegs = synthetic_jpegs(max(args.batches))
        for batch in tqdm(args.batches, desc="batch sizes", unit="batch size"):
            images = jpegs[:batch]
            decoded = np.stack([tf.io.decode_jpeg(j).numpy() for j in images])
            patches10 = tf.random.normal([batch * 10, crop, crop, 3])
            patches1 = patches10[:batch]
            measurements = {
                "serving_default (ten-crop)": signature_call("serving_default", images),
                "predict_images (ten-crop, decoded input)": signature_call("predict_images", decoded),
                "center_crop": signature_call("center_crop", images),
                "features (ten-crop fc7)": signature_call("features", images),
                "decode + preprocess only, ten crops": lambda images=images: ten_preprocess(tf.constant(images)),
                "decode + preprocess only, centre crop": lambda images=images: center_preprocess(tf.constant(images)),
                "network only, 10 x N patches": lambda patches10=patches10: network(patches10).numpy(),
                "network only, N patches": lambda patches1=patches1: network(patches1).numpy(),
            }
            latencies = time_round_robin(list(measurements.values()), args.repeats, args.max_seconds)
            medians = {}
            for name, times in zip(measurements, latencies):
                median, p99 = np.median(times), np.percentile(times, 99)
                medians[name] = median
                rows.append(f"| {name} | {batch} | {batch / median:.1f} | {median * 1e3:.1f} | {p99 * 1e3:.1f} "
                            f"| {len(times)} |")
            network_ratio = medians["network only, 10 x N patches"] / medians["network only, N patches"]
            signature_ratio = medians["serving_default (ten-crop)"] / medians["center_crop"]
            ratios.append(f"| {batch} | {network_ratio:.2f} | {signature_ratio:.2f} |")

        sess.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nAlexNet serving benchmark: {'run ' + args.run if args.run else 'full-size network, random weights'}, "
          f"{os.cpu_count()} CPU cores, 1-minute load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} "
          f"after, TensorFlow {tf.__version__}")
    print("\n| measurement | batch | images/s | median ms | p99 ms | calls |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| batch | network: ten-crop / single-crop | whole signature: serving_default / center_crop |"
          "\n|---|---|---|")
    print("\n".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())

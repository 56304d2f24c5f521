"""Input-pipeline benchmark: augmented training images per second per CPU core, tf.data vs plain PIL + NumPy.

Three pipelines, the same augmentation (random crop_size crop of the 256x256 square, reflection with p=1/2, PCA
lighting, mean-image subtraction), in one run:
  (a) tf.data from raw folder JPEGs of ImageNet's typical size (~500x375): decode, shorter side to 256, central
      square, then the augmentation (what training without the offline step would cost);
  (b) tf.data from prepared 256x256 shards (the project's training path): fused decode-and-crop and reflection in
      tf.data, lighting and mean in `network_input` (the train step's float work, here run on the CPU too);
  (c) the baseline: the same augmentation on the same prepared shards written plainly with PIL and NumPy, in the
      paper's order (mean-subtract the square, crop, reflect, light); (c') the same, tuned to crop first.

"Per core" is measured two ways: with a private tf.data thread pool of ONE thread (wall-clock images/s), and as
images per CPU-second of the whole process (user + system time, all threads), which also charges the Python loop.

Usage: python benchmarks/input_pipeline.py [--images 512] [--seconds 8] [--crop 224]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from alexnet_tf.config import DataConfig  # noqa: E402
from alexnet_tf.data import augment, prepare_source, preprocess, train_dataset  # noqa: E402
from alexnet_tf.data.augment import network_input  # noqa: E402
from alexnet_tf.data.sources import demo  # noqa: E402
from alexnet_tf.data.sources.folder import folder_source  # noqa: E402


def make_raw_folder(root: str, images: int) -> float:
    """Writes `images` photo-like JPEGs of 500x375 (and some 375x500) into root/{train,val}/<class>/.

    Returns the mean file size in KiB. Smooth shapes alone compress far better than photographs, so a band-limited
    texture is added to bring the files near ILSVRC's typical ~110 KiB.
    """
    rng = np.random.default_rng(0)
    sizes = []
    for split, count in (("train", images), ("val", 8)):
        for i in range(count):
            wnid = ("disk", "ring", "square", "star")[i % 4]
            folder = os.path.join(root, split, wnid)
            os.makedirs(folder, exist_ok=True)
            w, h = (500, 375) if i % 4 else (375, 500)
            canvas = demo.draw_demo_image(wnid, np.random.default_rng(i)).resize((w, h), Image.BILINEAR)
            texture = rng.normal(0, 24, (h // 2, w // 2, 3)).astype(np.float32)
            texture = np.asarray(Image.fromarray(np.clip(texture + 128, 0, 255).astype(np.uint8)).resize((w, h)),
                                 np.float32) - 128
            pixels = np.clip(np.asarray(canvas, np.float32) + texture, 0, 255).astype(np.uint8)
            path = os.path.join(folder, f"{wnid}_{i:05d}.JPEG")
            Image.fromarray(pixels).save(path, "JPEG", quality=90)
            sizes.append(os.path.getsize(path))
    return float(np.mean(sizes)) / 1024


def measure(iterator_factory, batch_size: int, seconds: float) -> tuple[float, float]:
    """(wall images/s, images per CPU-second) of iterating batches for about `seconds`, after a warm-up."""
    it = iterator_factory()
    for _ in range(3):
        next(it)
    count = 0
    t0, c0 = time.perf_counter(), sum(os.times()[:2])
    while time.perf_counter() - t0 < seconds:
        try:
            next(it)
        except StopIteration:
            it = iterator_factory()
            continue
        count += batch_size
    wall, cpu = time.perf_counter() - t0, sum(os.times()[:2]) - c0
    return count / wall, count / max(cpu, 1e-9)


def raw_dataset(paths: list[str], labels: list[int], stats, cfg: DataConfig, batch_size: int, threads: int):
    """(a): raw JPEGs -> decode -> resize_to_square -> the same draws, crop, reflection; float work per batch."""
    size, crop = cfg.image_size, cfg.crop_size

    def element(index, path, label):
        square = preprocess.resize_to_square(preprocess.decode_rgb(tf.io.read_file(path)), size)
        draws = augment.draw_augmentation(augment.element_seed(0, 0, index), size, crop, cfg.flip, cfg.pca_std)
        return {"image": augment.crop(square, draws["offset"], crop), **draws}, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).repeat().enumerate()
    ds = ds.map(lambda i, pl: element(i, pl[0], pl[1]), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda b, y: ({**b, "image": augment.reflect(b["image"], b["flip"])}, y))
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return ds.prefetch(2).with_options(options)


def pil_numpy_batches(records: list[tuple[bytes, int]], stats, cfg: DataConfig, batch_size: int,
                      crop_first: bool = False):
    """(c): the baseline, one Python thread: PIL decode, then with NumPy the paper's steps in the paper's order
    (subtract the mean image from the square, crop, reflect, add lighting). `crop_first` is a tuned variant that
    crops the uint8 image first and subtracts only the mean image's matching patch (same result, less float work).
    """
    rng = np.random.default_rng(0)
    size, crop = cfg.image_size, cfg.crop_size
    scale = np.sqrt(np.maximum(stats.eigvals, 0))
    while True:
        order = rng.permutation(len(records))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            out = np.empty((batch_size, crop, crop, 3), np.float32)
            labels = np.empty(batch_size, np.int32)
            for k, j in enumerate(order[start:start + batch_size]):
                jpeg, labels[k] = records[j]
                image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
                top, left = rng.integers(0, size - crop + 1, 2)
                if crop_first:
                    patch = image[top:top + crop, left:left + crop].astype(np.float32)
                    patch -= stats.mean_image[top:top + crop, left:left + crop]
                else:
                    centred = image.astype(np.float32) - stats.mean_image
                    patch = centred[top:top + crop, left:left + crop]
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                out[k] = patch + stats.eigvecs @ (rng.normal(0, cfg.pca_std, 3) * scale)
            yield out, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512, help="training images generated (default 512)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per figure (default 8)")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--keep", help="reuse/keep the generated data in this folder")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="alexnet_tf_bench_")
    try:
        raw = os.path.join(root, "raw")
        cfg = DataConfig(source=raw, image_size=256, crop_size=args.crop, shard_size=256, shuffle_buffer=1024)
        if not os.path.isdir(raw):
            print(f"writing {args.images} raw JPEGs of 500x375 ...", flush=True)
            kib = make_raw_folder(raw, args.images)
        else:
            kib = float(np.mean([os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(raw) for f in fs])) / 1024
        source = folder_source(raw)
        already = os.path.isfile(os.path.join(root, "prepared", "manifest.json"))
        t0, c0 = time.perf_counter(), sum(os.times()[:2])
        prepared = prepare_source(source, os.path.join(root, "prepared"), cfg.image_size, cfg.shard_size,
                                  progress=False)
        n = sum(s.count for s in source.splits.values())
        wall, cpu = time.perf_counter() - t0, sum(os.times()[:2]) - c0
        if not already:
            print(f"offline preparation (decode, resize, encode, statistics): {n} images in {wall:.1f} s wall, "
                  f"{n / max(cpu, 1e-9):.0f} images per CPU-second", flush=True)
        stats = prepared.stats
        shard_kib = sum(os.path.getsize(f) for f in prepared.train_files) / prepared.num_train / 1024
        print(f"raw JPEGs: {kib:.0f} KiB on average; prepared 256x256 JPEGs: {shard_kib:.0f} KiB; "
              f"crop {args.crop}, batch {args.batch}; load before: {os.getloadavg()[0]:.2f}", flush=True)

        network_fn = tf.function(lambda b: network_input(b, stats, cfg.mean, cfg.pca_scale))
        split = source.splits["train"]
        paths = [split.name_of(i) for i in range(split.count)]
        labels = [0] * len(paths)
        results = {}

        def tf_iter(ds, with_float: bool):
            def factory():
                it = iter(ds)
                if not with_float:
                    return it
                return (network_fn(b) for b, _ in it)
            return factory

        for threads in (1, 2):
            results[("a", threads)] = measure(
                tf_iter(raw_dataset(paths, labels, stats, cfg, args.batch, threads), False), args.batch, args.seconds)
            for with_float in (False, True):
                ds = train_dataset(prepared, cfg, args.batch, seed=0, epoch=0, num_threads=threads).repeat()
                results[("b", threads, with_float)] = measure(tf_iter(ds, with_float), args.batch, args.seconds)
        records = [(ex.features.feature["image/encoded"].bytes_list.value[0], 0)
                   for f in prepared.train_files for ex in
                   (tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(f))]
        results["c"] = measure(lambda: pil_numpy_batches(records, stats, cfg, args.batch), args.batch, args.seconds)
        results["c2"] = measure(lambda: pil_numpy_batches(records, stats, cfg, args.batch, crop_first=True),
                                args.batch, args.seconds)

        base_wall, base_cpu = results["c"]
        print("\nimages/s per core (wall-clock; 2-thread runs divided by 2) | images per CPU-second | "
              "vs baseline per core (wall, CPU)")
        rows = [("(c) baseline PIL+NumPy (paper order), 1 thread", results["c"], 1),
                ("(c') baseline PIL+NumPy, crop first, 1 thread", results["c2"], 1)]
        for threads in (1, 2):
            rows.append((f"(a) raw 500x375 JPEGs, tf.data {threads} thread(s)", results[("a", threads)], threads))
            rows.append((f"(b) prepared shards, tf.data {threads} thread(s)", results[("b", threads, False)],
                         threads))
            rows.append((f"(b) + network_input on CPU, {threads} thread(s)", results[("b", threads, True)], threads))
        for name, (wall, cpu), threads in rows:
            print(f"  {name:<48} {wall / threads:8.0f} | {cpu:8.0f} | "
                  f"x{wall / threads / base_wall:4.2f}, x{cpu / base_cpu:4.2f}")
        print(f"load after: {os.getloadavg()[0]:.2f} (2 cores; other processes share them)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

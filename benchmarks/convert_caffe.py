"""Benchmark of `python -m alexnet_tf.convert caffe`: a random full-size bvlc_alexnet-shaped caffemodel (233 MB) is
written to a temporary folder and converted by the command in a child process; prints its wall time and peak RSS.

    python benchmarks/convert_caffe.py [--legacy] [--keep DIR]

The target (issue 12): under 30 s and under 2 GB on this project's 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

# bvlc_alexnet's parameter layers: (name, type, Caffe weight shape, settings).
LAYERS = [
    ("conv1", "Convolution", (96, 3, 11, 11), dict(kernel_size=[11], stride=[4])),
    ("conv2", "Convolution", (256, 48, 5, 5), dict(kernel_size=[5], pad=[2], group=2)),
    ("conv3", "Convolution", (384, 256, 3, 3), dict(kernel_size=[3], pad=[1])),
    ("conv4", "Convolution", (384, 192, 3, 3), dict(kernel_size=[3], pad=[1], group=2)),
    ("conv5", "Convolution", (256, 192, 3, 3), dict(kernel_size=[3], pad=[1], group=2)),
    ("fc6", "InnerProduct", (4096, 9216), {}),
    ("fc7", "InnerProduct", (4096, 4096), {}),
    ("fc8", "InnerProduct", (1000, 4096), {}),
]


def write_caffemodel(path: str, seed: int = 0) -> int:
    """Writes a random full-size AlexNet in Caffe's `layer` format; returns its size in bytes."""
    from alexnet_tf.caffe.proto import messages

    rng = np.random.default_rng(seed)
    net = messages()["NetParameter"](name="AlexNet")

    def add(name: str, kind: str) -> object:
        layer = net.layer.add(name=name, type=kind)
        return layer

    def blob(layer: object, array: np.ndarray) -> None:
        b = layer.blobs.add()
        b.shape.dim.extend(array.shape)
        b.data.append(array.astype("<f4").tobytes())

    for name, kind, shape, settings in LAYERS:
        layer = add(name, kind)
        if kind == "Convolution":
            param = layer.convolution_param
            param.num_output = shape[0]
            for key, value in settings.items():
                getattr(param, key).extend(value) if isinstance(value, list) else setattr(param, key, value)
        else:
            layer.inner_product_param.num_output = shape[0]
        blob(layer, rng.standard_normal(shape, np.float32) * np.float32(0.01))
        blob(layer, np.zeros(shape[0], np.float32))
        if name != "fc8":
            add(f"relu_{name}", "ReLU")
        if name in ("conv1", "conv2"):
            add(f"norm_{name}", "LRN").lrn_param.alpha = 1e-4
            pool = add(f"pool_{name}", "Pooling").pooling_param
            pool.kernel_size, pool.stride = 3, 2
        if name == "conv5":
            pool = add("pool5", "Pooling").pooling_param
            pool.kernel_size, pool.stride = 3, 2
    data = net.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def write_mean(path: str) -> None:
    """A mean.binaryproto of 256x256 (BGR, 1 x 3 x 256 x 256)."""
    from alexnet_tf.caffe.proto import messages

    blob = messages()["BlobProto"]()
    blob.shape.dim.extend([1, 3, 256, 256])
    blob.data.append(np.full((1, 3, 256, 256), 110.0, "<f4").tobytes())
    with open(path, "wb") as f:
        f.write(blob.SerializeToString())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="write into DIR and keep the files (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        weights, mean = os.path.join(folder, "bvlc_alexnet.caffemodel"), os.path.join(folder, "mean.binaryproto")
        size = write_caffemodel(weights)
        write_mean(mean)
        with open(os.path.join(folder, "synset_words.txt"), "w") as f:
            f.writelines(f"n{i:08d} class {i}\n" for i in range(1000))
        out = os.path.join(folder, "run")
        command = [sys.executable, "-m", "alexnet_tf.convert", "caffe", weights, "--mean", mean,
                   "--synsets", os.path.join(folder, "synset_words.txt"), "--out", out, "--no-progress"]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB
    print(f"caffemodel {size / 2**20:.0f} MiB: converted in {seconds:.1f} s (including Python and TensorFlow "
          f"start-up), peak RSS {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The C client (alexnet_tf/serving/c_client/alexnet_client.c), compiled here against the TensorFlow wheel's C API:
it loads the export as tensorflow_model_server does (tag "serve", serving_default's tensor names read from the
MetaGraphDef) and answers photographs with Python's signature's top-5 classes, labels and scores; bad bytes give
exit status 3 and the signature's message."""

from __future__ import annotations

import os
import shutil
import subprocess

import helpers
import numpy as np
import pytest
import tensorflow as tf

import alexnet_tf.serving

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler (.ci/run installs gcc)")]

SOURCE = os.path.join(os.path.dirname(alexnet_tf.serving.__file__), "c_client", "alexnet_client.c")
PHOTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The client built with the build line of its header comment."""
    lib = os.path.dirname(tf.__file__)
    binary = str(tmp_path_factory.mktemp("c_client") / "alexnet_client")
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", binary, SOURCE, f"-I{lib}/include", f"-L{lib}",
                    "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{lib}"],
                   check=True, capture_output=True, text=True, timeout=300)
    return binary


def run_client(client: str, export: str, image: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([client, export, image], capture_output=True, text=True, timeout=300, env=env)


def test_the_c_client_gives_pythons_top_5(client, tiny_export, tmp_path):
    textured = tmp_path / "textured.jpg"
    textured.write_bytes(helpers.encode_image(helpers.photo(90, 120, seed=3, textured=True), "JPEG"))
    signature = tf.saved_model.load(tiny_export).signatures["serving_default"]
    for image in (PHOTO, str(textured)):
        done = run_client(client, tiny_export, image)
        assert done.returncode == 0, done.stderr[-2000:]
        rows = [line.split("\t") for line in done.stdout.splitlines()]
        want = signature(image_bytes=tf.constant([open(image, "rb").read()]))
        assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
        assert [int(r[1]) for r in rows] == want["top_k_classes"].numpy()[0].tolist()
        np.testing.assert_allclose([float(r[2]) for r in rows], want["top_k_scores"].numpy()[0], rtol=1e-6,
                                   atol=1e-12)
        assert [r[3] for r in rows] == [label.decode() for label in want["top_k_labels"].numpy()[0]]


def test_the_c_client_reports_bad_bytes_with_status_3(client, tiny_export, tmp_path):
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    done = run_client(client, tiny_export, str(noise))
    assert done.returncode == 3
    assert "not a JPEG, PNG, GIF or BMP image" in done.stderr
    assert run_client(client, tiny_export, str(tmp_path / "missing.jpg")).returncode == 2

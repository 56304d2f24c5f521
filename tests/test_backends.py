"""The Keras model on every backend: a `.keras` file written here (TensorFlow) loads in a fresh process after
`import alexnet_tf` alone, and on the JAX and PyTorch backends it builds, predicts, jits and trains a step, giving
TensorFlow's logits (1e-5); `AlexNet(weights=...)` with a run directory, a checkpoint prefix or a `.weights.h5` file
gives TensorFlow's logits there too (1e-5 of their scale). The other backends run in subprocesses with
KERAS_BACKEND set: Keras picks its backend once per process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from alexnet_tf.applications import AlexNet
from alexnet_tf.runs.rundir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in the subprocess: load the file after `import alexnet_tf` only, compare the logits, then check that a model
# built there (paper init) predicts under jit and that a training step changes its weights.
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import alexnet_tf
    import keras

    path, data, jit = sys.argv[1], np.load(sys.argv[2]), sys.argv[3] == "jit"
    assert keras.backend.backend() == sys.argv[4], keras.backend.backend()
    model = keras.models.load_model(path)
    logits = keras.ops.convert_to_numpy(model(data["x"], training=False))
    diff = float(np.abs(logits - data["logits"]).max())
    assert diff <= 1e-5, f"logits differ from TensorFlow's by {diff}"
    assert np.allclose(model.predict(data["x"], verbose=0), data["logits"], atol=1e-5)

    built = alexnet_tf.build_alexnet(num_classes=5, width=0.125, fc_width=32, input_size=67)
    built.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert built.predict(data["x"], verbose=0).shape == (2, 5)
    before = keras.ops.convert_to_numpy(built.get_layer("conv1_a").kernel).copy()
    history = built.fit(data["x"], np.array([0, 3]), epochs=1, verbose=0)
    after = keras.ops.convert_to_numpy(built.get_layer("conv1_a").kernel)
    assert np.isfinite(history.history["loss"][0]) and not np.array_equal(before, after)
    print("ok", keras.backend.backend(), diff)
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A small two-tower AlexNet application (its own mean subtraction, then logits) saved as .keras, and an .npz
    of pixels and their TensorFlow logits."""
    folder = tmp_path_factory.mktemp("backends")
    keras.utils.set_random_seed(4)
    model = AlexNet(classes=5, width=0.125, fc_width=32, input_shape=(67, 67, 3), classifier_activation=None)
    x = np.random.default_rng(5).uniform(0, 255, size=(2, 67, 67, 3)).astype(np.float32)
    path, data = str(folder / "alexnet.keras"), str(folder / "data.npz")
    model.save(path)
    np.savez(data, x=x, logits=model(x, training=False).numpy())
    return path, data


def run_child(backend: str, saved: tuple[str, str], jit: bool) -> str:
    return run_script(CHILD, backend, *saved, "jit" if jit else "eager", backend)


def run_script(code: str, backend: str, *args: str) -> str:
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# Run in the subprocess: a run's weights (its directory, a checkpoint prefix, a .weights.h5 file of the same
# application) on this backend give TensorFlow's logits.
RUN_CHILD = textwrap.dedent("""
    import json
    import sys
    import numpy as np
    import alexnet_tf
    import alexnet_tf.errors
    import keras

    data = np.load(sys.argv[1])
    assert keras.backend.backend() == sys.argv[2], keras.backend.backend()
    for weights in sys.argv[3:]:
        # A .weights.h5 file needs the application's arguments; a run brings its own.
        options = json.loads(str(data["options"])) if weights.endswith(".weights.h5") else {}
        model = alexnet_tf.AlexNet(weights=weights, classifier_activation=None, **options)
        logits = keras.ops.convert_to_numpy(model(data["x"], training=False))
        diff = float(np.abs(logits - data["logits"]).max())
        assert diff <= 1e-5 * np.abs(data["logits"]).max(), f"{weights}: logits differ from TensorFlow's by {diff}"
        print("ok", weights, diff)
    try:
        alexnet_tf.export(sys.argv[3], "unused")
    except alexnet_tf.errors.ExportError as e:
        assert sys.argv[2] in str(e) and "KERAS_BACKEND=tensorflow" in str(e), e
        print("export refused")
""")


@pytest.fixture(scope="module")
def run_weights(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The .npz of pixels and TensorFlow's logits for tiny_run's weights, then the three ways to name the weights:
    the run directory, its checkpoint prefix, and a .weights.h5 file of the application built from the run."""
    folder = tmp_path_factory.mktemp("run_weights")
    model = AlexNet(weights=tiny_run.path, classifier_activation=None)
    crop = tiny_run.config.data.crop_size
    x = np.random.default_rng(6).uniform(0, 255, size=(2, crop, crop, 3)).astype(np.float32)
    data, h5 = str(folder / "data.npz"), str(folder / "alexnet.weights.h5")
    model_config = tiny_run.config.model
    options = {"classes": model_config.num_classes, "input_shape": [crop, crop, 3], "width": model_config.width,
               "fc_width": model_config.fc_width}
    np.savez(data, x=x, logits=model(x, training=False).numpy(), options=json.dumps(options))
    model.save_weights(h5)
    return [data, tiny_run.path, RunDir(tiny_run.path).latest_checkpoint(), h5]


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    pytest.param("jax", marks=pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                                 reason="needs the jax extra (pip install .[jax])")),
    pytest.param("torch", marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                                   reason="needs the torch extra (pip install .[torch])"))])
def test_a_runs_weights_give_tensorflows_logits_on_every_backend(run_weights, backend):
    data, *weights = run_weights
    lines = run_script(RUN_CHILD, backend, data, backend, *weights).splitlines()
    assert [line.split()[1] for line in lines if line.startswith("ok")] == weights
    assert lines[-1] == "export refused"  # it names the backend and the way that works


@pytest.mark.slow
def test_keras_file_loads_in_a_fresh_process_after_import_alexnet_tf(saved):
    assert "ok tensorflow" in run_child("tensorflow", saved, jit=False)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra (pip install .[jax])")
def test_jax_backend_gives_tensorflows_logits_and_trains_under_jit(saved):
    assert "ok jax" in run_child("jax", saved, jit=True)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the torch extra (pip install .[torch])")
def test_torch_backend_gives_tensorflows_logits_and_trains(saved):
    # torch.compile (jit_compile=True) takes minutes on CPU; eager PyTorch is what Keras runs by default.
    assert "ok torch" in run_child("torch", saved, jit=False)


def test_the_import_hook_registers_the_layers_without_loading_keras():
    code = ("import sys, alexnet_tf; assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; "
            "import keras; print(keras.saving.get_registered_object('alexnet_tf>TowerZeroPadding2D').__name__)")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "TowerZeroPadding2D"

"""Exports besides the SavedModel, for tools that cannot take its in-graph image decoding: a Keras file
(`.keras`), and the network alone converted with the converters their users use, LiteRT (`.tflite`, TensorFlow's
`TFLiteConverter`, run with ai-edge-litert) and ONNX (`.onnx`, tf2onnx, run with onnxruntime).

The network-only model takes RGB pixels 0-255 at crop size, [N, crop, crop, 3], float32 or uint8, subtracts the
training mean inside (the mean image's central patch, as the centre crop gets it) and returns softmax
`probabilities` [N, C]. Decoding, resizing and the ten-crop average stay with the caller: the converters have no
rule for the SavedModel's DecodeImage, ScaleAndTranslate (antialiased resize) and HashTable ops (docs/serving.md).
Each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import tempfile

import keras
import tensorflow as tf

from alexnet_tf.core.extras import optional_import
from alexnet_tf.core.files import FILE, check_output, output_file
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.errors import ExportError
from alexnet_tf.runs.rundir import load_run
from alexnet_tf.serving.contract import FORMAT_EXTENSIONS, INPUT_TYPES
from alexnet_tf.serving.signatures import ServingSpec, network_function, serving_spec

ONNX_OPSET = 17  # onnxruntime 1.16 and later run it; tf2onnx's tested range reaches 18
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


def output_path(out: str, fmt: str) -> str:
    """The file to write: `out` itself when it ends in the format's extension, else `out/alexnet<extension>`."""
    extension = FORMAT_EXTENSIONS[fmt]
    return out if out.endswith(extension) else os.path.join(out, f"alexnet{extension}")


def _check_target(path: str, force: bool) -> None:
    check_output(path, FILE, "--out")
    if os.path.exists(path) and not force:
        raise ExportError(f"{path!r} already exists; pass --force to replace it, or give another --out")


def write_keras(model: keras.Model, path: str, force: bool = False) -> str:
    """Saves a Keras model as a `.keras` file (loads anywhere after `import alexnet_tf`); returns the path."""
    _check_target(path, force)
    with output_file(path, "--out") as tmp, tempfile.TemporaryDirectory(
            prefix=".keras-", suffix=f".tmp-{os.getpid()}", dir=os.path.dirname(tmp)) as staging:
        staged = os.path.join(staging, "alexnet.keras")
        model.save(staged)
        os.replace(staged, tmp)
    return path


def network_savedmodel(model: keras.Model, spec: ServingSpec, folder: str, input_type: str = "float32") -> None:
    """Writes the network alone (see the module docstring) as a SavedModel whose `serving_default` is
    images -> {"probabilities"}: the converters' input. Written through ExportArchive, which hands the converters
    TensorFlow variables (a Keras 3 model inside a plain tf.Module converts to a LiteRT file that outputs NaN)."""
    if input_type not in INPUT_TYPES:
        raise ExportError(f"--input-type: got {input_type!r}; allowed: {', '.join(INPUT_TYPES)}")
    network = network_function(model, spec, probabilities=True)
    images = tf.TensorSpec([None, spec.crop_size, spec.crop_size, 3], tf.as_dtype(input_type), name=INPUT_NAME)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda x: {OUTPUT_NAME: network(x)}, input_signature=[images])
    archive.write_out(folder, verbose=False)


def litert_bytes(saved_dir: str) -> bytes:
    """The network SavedModel converted by TensorFlow's LiteRT converter (builtin ops only)."""
    return tf.lite.TFLiteConverter.from_saved_model(saved_dir).convert()


def onnx_bytes(saved_dir: str, opset: int = ONNX_OPSET) -> bytes:
    """The network SavedModel converted by tf2onnx, as its command (`python -m tf2onnx.convert --saved-model`)
    does: the signature's graph frozen, then converted, its inputs and outputs named as the signature's."""
    tf_loader = optional_import("tf2onnx.tf_loader", "export --format onnx")
    convert = optional_import("tf2onnx.convert", "export --format onnx")
    graph_def, inputs, outputs, _, renames = tf_loader.from_saved_model(
        saved_dir, None, None, tag="serve", signatures=["serving_default"], return_initialized_tables=True,
        return_tensors_to_rename=True)
    model_proto, _ = convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=opset,
                                            tensors_to_rename=renames)
    return model_proto.SerializeToString()


def export_network(run_dir: str, out: str, fmt: str, checkpoint: str | None = None, input_type: str = "float32",
                   force: bool = False, progress: bool = True) -> str:
    """Converts a run's checkpoint to a network-only `.tflite` (fmt "litert") or `.onnx` (fmt "onnx") file.

    Args:
        run_dir: The run directory (or a converted Caffe run).
        out: The file (ending in the format's extension) or a folder for `alexnet.tflite` / `alexnet.onnx`.
        checkpoint: A checkpoint prefix (default: the run's latest).
        input_type: "float32" or "uint8" pixels.
        force: Replace an existing file.

    Returns:
        The path written.

    Raises:
        ExportError: for an existing file without `force`, or a bad format or input type.
        RunDirError: for a run directory or checkpoint that cannot be read.
    """
    if fmt not in ("litert", "onnx"):
        raise ExportError(f"--format: {fmt!r} is not a network-only format; allowed: litert, onnx")
    path = output_path(out, fmt)
    _check_target(path, force)
    run = load_run(run_dir, checkpoint)
    steps = progress_bar(3, f"export {fmt} to {path}", progress, unit="step")
    try:
        with output_file(path, "--out") as tmp, tempfile.TemporaryDirectory(
                prefix=".network-", suffix=f".tmp-{os.getpid()}", dir=os.path.dirname(tmp)) as staging:
            steps.set_postfix_str("network SavedModel")
            network_savedmodel(run.restore_model(), serving_spec(run), staging, input_type)
            steps.update()
            steps.set_postfix_str("converting")
            content = litert_bytes(staging) if fmt == "litert" else onnx_bytes(staging)
            steps.update()
            with open(tmp, "wb") as f:
                f.write(content)
            steps.update()
    finally:
        steps.close()
    return path

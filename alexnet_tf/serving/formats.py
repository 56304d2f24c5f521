"""The table of export formats, `FORMATS` (name -> its exporter and its loader), which the export command,
`alexnet_tf.export` and the tests read: the versioned SavedModel (`serving.savedmodel`), and, for tools that cannot
take its in-graph image decoding, a Keras file (`.keras`) and the network alone converted with the converters their
users use, LiteRT (`.tflite`, TensorFlow's `TFLiteConverter`, run with ai-edge-litert) and ONNX (`.onnx`, tf2onnx,
run with onnxruntime). The names and what each writes are `serving.contract.EXPORT_FORMATS` (the --help text).

The network-only model takes RGB pixels 0-255 at crop size, [N, crop, crop, 3], float32 or uint8, subtracts the
training mean inside (the mean image's central patch, as the centre crop gets it) and returns softmax
`probabilities` [N, C]. Decoding, resizing and the ten-crop average stay with the caller: the converters have no
rule for the SavedModel's DecodeImage, ScaleAndTranslate (antialiased resize) and HashTable ops (docs/serving.md).
Each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.core.extras import optional_import
from alexnet_tf.core.files import FILE, atomic_path, check_output, output_file
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.errors import ExportError
from alexnet_tf.models.classifier import classifier_of
from alexnet_tf.serving.contract import EXPORT_FORMATS, FORMAT_EXTENSIONS, INPUT_TYPES
from alexnet_tf.serving.savedmodel import export_model
from alexnet_tf.serving.signatures import ServingSpec, network_function

ONNX_OPSET = 17  # onnxruntime 1.16 and later run it; tf2onnx's tested range reaches 18
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
# What the OpenVINO IR records for its runtime: f32 inference (bf16 moves the probabilities by up to 7e-3).
OPENVINO_PRECISION_KEY, OPENVINO_PRECISION = "INFERENCE_PRECISION_HINT", "f32"


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


def _write_network(model: keras.Model, spec: ServingSpec, path: str, convert: Callable[[str], bytes], progress: bool,
                   input_type: str) -> str:
    """The network-only SavedModel (in a staging folder beside `path`) converted by `convert`, written to `path`."""
    steps = progress_bar(3, f"export to {path}", progress, unit="step")
    try:
        with output_file(path, "--out") as tmp, tempfile.TemporaryDirectory(
                prefix=".network-", suffix=f".tmp-{os.getpid()}", dir=os.path.dirname(tmp)) as staging:
            steps.set_postfix_str("network SavedModel")
            network_savedmodel(model, spec, staging, input_type)
            steps.update()
            steps.set_postfix_str("converting")
            content = convert(staging)
            steps.update()
            with open(tmp, "wb") as f:
                f.write(content)
            steps.update()
    finally:
        steps.close()
    return path


def openvino_files(saved_dir: str, xml_path: str) -> None:
    """The network SavedModel converted by OpenVINO's own converter (`openvino.convert_model` reads the SavedModel
    directly) and saved as IR, `xml_path` and the `.bin` beside it, weights kept float32. The IR records
    INFERENCE_PRECISION_HINT f32 in its rt_info (runtime_options): OpenVINO's CPU plugin runs bf16 by default on a
    CPU with AVX512_BF16 or AMX, and does not apply that entry by itself (2026.4), so a caller passes it to
    `compile_model` (see `_load_openvino` and docs/serving.md)."""
    openvino = optional_import("openvino", "export --format openvino")

    model = openvino.convert_model(saved_dir)
    model.set_rt_info(OPENVINO_PRECISION, ["runtime_options", OPENVINO_PRECISION_KEY])
    openvino.save_model(model, xml_path, compress_to_fp16=False)


def _export_openvino(model: keras.Model, spec: ServingSpec, out: str, force: bool = False, progress: bool = True,
                     input_type: str = "float32") -> str:
    """Writes the IR's .bin, then its .xml (the file a reader opens), each renamed into place."""
    path = output_path(out, "openvino")
    _check_target(path, force)

    def convert(saved_dir: str) -> bytes:
        staged = os.path.join(saved_dir, "ir", "alexnet.xml")
        openvino_files(saved_dir, staged)
        with atomic_path(path[:-len(".xml")] + ".bin") as tmp:
            os.replace(staged[:-len(".xml")] + ".bin", tmp)
        return open(staged, "rb").read()

    return _write_network(model, spec, path, convert, progress, input_type)


def _network_exporter(fmt: str, convert: Callable[[str], bytes]) -> Callable[..., str]:
    """The exporter of a network-only format whose file `convert` makes from the network SavedModel."""
    def export(model: keras.Model, spec: ServingSpec, out: str, force: bool = False, progress: bool = True,
               input_type: str = "float32") -> str:
        path = output_path(out, fmt)
        _check_target(path, force)
        return _write_network(model, spec, path, convert, progress, input_type)
    return export


def _export_savedmodel(model: keras.Model, spec: ServingSpec, out: str, force: bool = False, progress: bool = True,
                       version: int | None = None, model_name: str | None = None) -> str:
    return export_model(model, spec, out, version, force, model_name=model_name, progress=progress)


def _export_keras(model: keras.Model, spec: ServingSpec, out: str, force: bool = False, progress: bool = True) -> str:
    del progress  # one save
    return write_keras(classifier_of(model, spec.mean), output_path(out, "keras"), force)


Predict = Callable[[np.ndarray], np.ndarray]  # RGB pixels 0-255 at crop size [N, S, S, 3] -> probabilities [N, C]


def _load_savedmodel(path: str) -> Predict:
    serve = tf.saved_model.load(path).signatures["serve"]
    return lambda x: tf.nn.softmax(next(iter(serve(tf.constant(x, tf.float32)).values()))).numpy()


def _load_keras(path: str) -> Predict:
    model = keras.models.load_model(path)
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def _load_litert(path: str) -> Predict:
    interpreter = optional_import("ai_edge_litert.interpreter", "running a .tflite file")
    runner = interpreter.Interpreter(model_path=path).get_signature_runner()
    return lambda x: runner(**{INPUT_NAME: x})[OUTPUT_NAME]


def _load_onnx(path: str) -> Predict:
    onnxruntime = optional_import("onnxruntime", "running an .onnx file")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _load_openvino(path: str) -> Predict:
    openvino = optional_import("openvino", "running OpenVINO IR")

    core = openvino.Core()
    model = core.read_model(path)
    precision = model.get_rt_info(["runtime_options", OPENVINO_PRECISION_KEY]).astype(str)
    compiled = core.compile_model(model, "CPU", {OPENVINO_PRECISION_KEY: precision})
    return lambda x: compiled(x)[OUTPUT_NAME]


@dataclass(frozen=True)
class Format:
    """An export format: how to write it and how to run what was written.

    Attributes:
        export: (network, spec, out, force=, progress=, **options) -> the path written; `network` is the logits
            model of `build_alexnet`, `spec` its preprocessing and vocabulary.
        load: The path written -> a function from RGB pixels 0-255 at crop size to probabilities (for tests and
            benchmarks; it imports the format's runtime).
        options: The format's own keyword options besides force and progress.
        runtime: The module its loader needs (None: TensorFlow or Keras).
        converter: The optional module its exporter needs (None: TensorFlow or Keras).
    """

    export: Callable[..., str]
    load: Callable[[str], Predict]
    options: tuple[str, ...] = ()
    runtime: str | None = None
    converter: str | None = None


FORMATS: dict[str, Format] = {
    "savedmodel": Format(_export_savedmodel, _load_savedmodel, ("version", "model_name")),
    "keras": Format(_export_keras, _load_keras),
    "litert": Format(_network_exporter("litert", litert_bytes), _load_litert, ("input_type",), "ai_edge_litert"),
    "onnx": Format(_network_exporter("onnx", onnx_bytes), _load_onnx, ("input_type",), "onnxruntime", "tf2onnx"),
    "openvino": Format(_export_openvino, _load_openvino, ("input_type",), "openvino", "openvino"),
}
if FORMATS.keys() != EXPORT_FORMATS.keys():
    raise AssertionError(f"serving.contract.EXPORT_FORMATS {sorted(EXPORT_FORMATS)} and FORMATS {sorted(FORMATS)} "
                         f"must name the same formats")


def export(model: keras.Model, spec: ServingSpec, out: str, format: str = "savedmodel", force: bool = False,
           progress: bool = True, **options: Any) -> str:
    """Writes `model` (the logits network) with `spec` in `format` (a name in FORMATS); returns the path written.

    Raises:
        ExportError: for an unknown format, an option the format does not take, or an existing target without
            `force`.
    """
    if format not in FORMATS:
        raise ExportError(f"format: got {format!r}; allowed: {', '.join(FORMATS)}")
    given = {name for name, value in options.items() if value is not None}
    unknown = sorted(given - set(FORMATS[format].options))
    if unknown:
        raise ExportError(f"format {format!r} takes no {', '.join(unknown)} (it takes: "
                          f"{', '.join(FORMATS[format].options) or 'no options'})")
    return FORMATS[format].export(model, spec, out, force=force, progress=progress,
                                  **{k: v for k, v in options.items() if v is not None})

"""What an export promises its clients: the signature names, the top-k, the request limit, the label columns and
the files beside the graph. Plain constants, importable without TensorFlow (the commands' --help shows them)."""

from __future__ import annotations

import os

SIGNATURES = ("serving_default", "predict_images", "center_crop", "features")
# The network alone on float RGB pixels at crop size (mean inside) -> logits: Keras's TFSMLayer endpoints; they are
# signatures too. `__call__(images, training=False)` is the same function as TensorFlow's reusable-SavedModel API.
REUSABLE_ENDPOINTS = ("serve", "serve_training")
TOP_K = 5  # classes in the top-k outputs of every signature, and in predict's listing
# Images per request. Ten-crop evaluation runs 10 * N patches through the network at once; a request of 64 photos
# took 2.7 GB beyond the loaded full-size model here (docs/serving.md, limits).
MAX_BATCH = 64
LABEL_COLUMNS = {"wnid": 1, "name": 2}  # columns of classes.tsv: index, wnid, name
VOCABULARY_FILE = "classes.tsv"  # in the SavedModel's assets/
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# The preprocessing constants in plain JSON, for tools that evaluate an export (the graph holds them as constants).
PREPROCESSING_FILE = os.path.join("assets.extra", "preprocessing.json")
# The network's build_alexnet arguments, and the training mean (0-255, RGB: [S, S, 3] mean image or [3] per channel).
MODEL_CONFIG_FILE = os.path.join("assets.extra", "model_config.json")
MEAN_FILE = os.path.join("assets.extra", "mean.npy")
# python -m alexnet_tf.export --format NAME: what each format writes (the --help text). `serving.formats.FORMATS`
# holds each one's exporter and loader under the same names, and checks at import that the names agree.
EXPORT_FORMATS = {
    "savedmodel": "OUT/<N>/, the versioned SavedModel with the serving signatures (tensorflow_model_server)",
    "keras": "alexnet.keras, the Keras model: pixels 0-255 at crop size -> probabilities",
    "litert": "alexnet.tflite, the network alone by TensorFlow's LiteRT converter (ai-edge-litert runs it)",
    "onnx": "alexnet.onnx, the network alone by tf2onnx (onnxruntime runs it)",
    "openvino": "alexnet.xml + .bin, the network alone as OpenVINO IR (f32 precision hint in its rt_info)",
}
# The file each single-file format writes: OUT itself when it ends so, else OUT/alexnet<extension>.
FORMAT_EXTENSIONS = {"keras": ".keras", "litert": ".tflite", "onnx": ".onnx", "openvino": ".xml"}
INPUT_TYPES = ("float32", "uint8")  # the pixels the litert and onnx files take

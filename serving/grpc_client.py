"""Example gRPC client for the exported AlexNet under tensorflow_model_server (tensorflow-serving-api protos).

    python serving/grpc_client.py cat.jpg dog.png [--server localhost:8500] [--model alexnet]
                                  [--signature serving_default|center_crop|features] [--version N]

Builds a PredictRequest whose input `image_bytes` is a string tensor [N] of the files' bytes, calls
PredictionService/Predict, and prints each image's top-5 labels and scores (or its fc7 feature length and norm).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc


def make_request(images: Sequence[bytes], model: str = "alexnet", signature: str = "serving_default",
                 version: int | None = None) -> predict_pb2.PredictRequest:
    """A PredictRequest carrying the encoded images as the signature's `image_bytes` input."""
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model, signature_name=signature))
    if version:
        request.model_spec.version.value = version
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
    return request


def predict(images: Sequence[bytes], server: str = "localhost:8500", model: str = "alexnet",
            signature: str = "serving_default", version: int | None = None,
            timeout: float = 60.0) -> dict[str, np.ndarray]:
    """Calls Predict and returns the outputs as NumPy arrays, keyed by output name.

    Raises:
        grpc.RpcError: e.g. INVALID_ARGUMENT with the server's message for an image it could not decode.
    """
    # The default 4 MB message limit is too small for batches of photos.
    options = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(make_request(images, model, signature, version), timeout=timeout)
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with AlexNet served by tensorflow_model_server "
                                                 "(gRPC API).")
    parser.add_argument("images", nargs="+", help="JPEG, PNG, GIF or BMP files")
    parser.add_argument("--server", default="localhost:8500", help="host:port of the server's --port")
    parser.add_argument("--model", default="alexnet", help="the model name in models.config")
    parser.add_argument("--signature", default="serving_default",
                        choices=["serving_default", "center_crop", "features"])
    parser.add_argument("--version", type=int, help="a specific version (default: the server's choice)")
    args = parser.parse_args(argv)
    data = []
    for path in args.images:
        with open(path, "rb") as f:
            data.append(f.read())
    try:
        outputs = predict(data, args.server, args.model, args.signature, args.version)
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    for i, path in enumerate(args.images):
        if args.signature == "features":
            vector = outputs["features"][i]
            print(f"{path}: {vector.shape[0]}-d fc7 features, L2 norm {np.linalg.norm(vector):.3f}")
            continue
        print(path)
        for label, score in zip(outputs["top_k_labels"][i], outputs["top_k_scores"][i]):
            print(f"  {score:7.2%}  {label.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

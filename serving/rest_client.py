"""Example REST client for the exported AlexNet under tensorflow_model_server (standard library only).

    python serving/rest_client.py cat.jpg dog.png [--url http://localhost:8501] [--model alexnet]
                                  [--signature serving_default|center_crop|features] [--version N]

Sends the files' bytes base64-encoded in TensorFlow Serving's row format, {"instances": [{"b64": ...}, ...]}, to
POST /v1/models/<model>[/versions/<N>]:predict and prints each image's top-5 labels and scores (or the length and
norm of its fc7 feature vector for the `features` signature).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import urllib.error
import urllib.request
from typing import Any, Sequence


def predict_body(images: Sequence[bytes], signature: str = "serving_default") -> dict[str, Any]:
    """The JSON body of a predict call: one {"b64": ...} instance per encoded image."""
    return {"signature_name": signature,
            "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}


def predict(images: Sequence[bytes], url: str = "http://localhost:8501", model: str = "alexnet",
            signature: str = "serving_default", version: int | None = None, timeout: float = 60.0) -> list[Any]:
    """Calls the server's predict endpoint and returns its "predictions", one entry per image.

    Raises:
        RuntimeError: with the server's error message (e.g. an image it could not decode).
    """
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    request = urllib.request.Request(url.rstrip("/") + path, data=json.dumps(predict_body(images, signature)).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)["predictions"]
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail)["error"]
        except (ValueError, KeyError):
            pass
        raise RuntimeError(f"{url}{path}: HTTP {e.code}: {detail}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with AlexNet served by tensorflow_model_server "
                                                 "(REST API).")
    parser.add_argument("images", nargs="+", help="JPEG, PNG, GIF or BMP files")
    parser.add_argument("--url", default="http://localhost:8501", help="the server's --rest_api_port address")
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
        predictions = predict(data, args.url, args.model, args.signature, args.version)
    except (RuntimeError, urllib.error.URLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path, prediction in zip(args.images, predictions):
        if args.signature == "features":  # a single output: the server returns the bare vector
            print(f"{path}: {len(prediction)}-d fc7 features, L2 norm {math.sqrt(sum(v * v for v in prediction)):.3f}")
            continue
        print(path)
        for label, score in zip(prediction["top_k_labels"], prediction["top_k_scores"]):
            print(f"  {score:7.2%}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

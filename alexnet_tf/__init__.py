"""alexnet_tf: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) in TensorFlow 2 / Keras 3.

The public API (importing the package is instant; TensorFlow loads on first use):

    import alexnet_tf

    config = alexnet_tf.load_config("configs/tiny.yaml", ["train.epochs=2"])
    result = alexnet_tf.train(config, "runs/tiny")          # a run directory, resumable
    path = alexnet_tf.export("runs/tiny")                   # runs/tiny/export/<N>, a SavedModel
    model = alexnet_tf.load("runs/tiny")                    # a run, a checkpoint or an export
    model.predict(["photo.jpg"])                            # top-5 classes and probabilities
    model.evaluate()                                        # top-1/top-5 error, centre and ten crops
    net = alexnet_tf.build_alexnet(num_classes=1000)        # the bare two-tower Keras model
    app = alexnet_tf.AlexNet(weights="runs/tiny")           # a Keras application (alexnet_tf.applications)
    alexnet_tf.decode_predictions(app.predict(alexnet_tf.preprocess_input(pixels)), class_names=...)

The functions live in `alexnet_tf.api`, which loads TensorFlow: the package imports it on first use of one of them
(`load_config` needs no TensorFlow and is imported at once). `alexnet_tf.train` and `alexnet_tf.export` are also the
names of the command modules (`python -m alexnet_tf.train`); a program that imports those modules makes the package
attribute name the module, so the two command modules are callable and call the same functions (see
`alexnet_tf.cli.callable_module`).

Importing the package also registers its Keras layers (LRN and the tower layers), so that
`keras.models.load_model("alexnet.keras")` works after `import alexnet_tf` alone, and it does so without loading
Keras or TensorFlow itself: when Keras is already imported the layers module is imported at once; otherwise a small
import hook (`_RegisterLayersAfterKeras`) imports it right after Keras has been imported, then removes itself.
"""

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from alexnet_tf.config import load_config
from alexnet_tf.core.tensorflow_setup import use_onednn_by_default

use_onednn_by_default()  # TensorFlow reads this switch once, as it loads: before any module can import it

__all__ = ["AlexNet", "build_alexnet", "decode_predictions", "export", "load", "load_config", "preprocess_input",
           "train"]
_FROM_API = ("build_alexnet", "export", "load", "train")
_FROM_APPLICATIONS = ("AlexNet", "decode_predictions", "preprocess_input")  # as keras.applications.vgg16 has them


def __getattr__(name: str) -> Any:
    """The API functions other than `load_config`, loaded with TensorFlow (quietly) when first asked for, and
    `AlexNet`, `preprocess_input` and `decode_predictions`, the Keras application's (`alexnet_tf.applications`)."""
    if name not in (*_FROM_API, *_FROM_APPLICATIONS):
        raise AttributeError(f"module 'alexnet_tf' has no attribute {name!r}")
    from alexnet_tf.core.tensorflow_setup import quiet_tensorflow

    quiet_tensorflow()
    if name in _FROM_APPLICATIONS:
        from alexnet_tf import applications

        return getattr(applications, name)
    from alexnet_tf import api

    return getattr(api, name)


_LAYERS_MODULE = "alexnet_tf.models.layers"


class _RegisterLayersAfterKeras(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `keras` is about to be imported, it wraps the real loader so that our layers
    module (whose classes register themselves with `keras.saving.register_keras_serializable`) is imported as soon
    as Keras has finished importing."""

    def __init__(self) -> None:
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        if name != "keras" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)  # the real spec, from the finders after this one
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return None
        exec_keras = spec.loader.exec_module

        def exec_module(module) -> None:
            exec_keras(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            importlib.import_module(_LAYERS_MODULE)

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    importlib.import_module(_LAYERS_MODULE)
elif not any(isinstance(f, _RegisterLayersAfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterLayersAfterKeras())

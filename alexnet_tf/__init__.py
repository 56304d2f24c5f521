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

The functions live in `alexnet_tf.api`. `alexnet_tf.train` and `alexnet_tf.export` are also the names of the command
modules (`python -m alexnet_tf.train`); a program that imports those modules makes the package attribute name the
module, so the two command modules are callable and call the same functions (see `alexnet_tf.cli.callable_module`).
"""

from alexnet_tf.api import build_alexnet, export, load, load_config, train

__all__ = ["build_alexnet", "export", "load", "load_config", "train"]

"""alexnet_tf: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

setup(
    name="alexnet_tf",
    version="0.1.0",
    description="The paper's two-tower AlexNet in TensorFlow 2 / Keras 3: train, export, serve.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["alexnet_tf", "alexnet_tf.*"]),
    package_data={"alexnet_tf.data": ["ilsvrc2012_synsets.txt"]},  # decode_predictions' 1000 classes
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9",
        "tensorflow-serving-api>=2.21,<2.22",  # PredictionLog protos for the SavedModel's warm-up requests
        "numpy",
        "pillow",
        "tensorboard",
        "pyyaml",  # configs/
        "tqdm",  # progress bars
        "matplotlib",  # the ablation study's figures
    ],
    extras_require={
        "test": ["pytest", "ruff"],
        # export --format onnx converts with tf2onnx; onnxruntime runs the file (the converter tests use it)
        "onnx": ["tf2onnx>=1.17", "onnx", "onnxruntime"],
        # export --format litert converts with TensorFlow's own converter; ai-edge-litert's interpreter runs it
        "litert": ["ai-edge-litert>=2.3"],
        # Keras 3's other backends: the model builds, jits, predicts and trains on them (training stays TF's)
        "jax": ["jax>=0.10"],
        "torch": ["torch>=2.4"],
    },
)

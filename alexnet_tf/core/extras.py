"""Optional packages (converters, runtimes, readers): the one way they are imported, so that a missing one ends in
an exit-2 message with its install line, never a ModuleNotFoundError traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

from alexnet_tf.errors import MissingExtraError

DISTRIBUTION = "alexnet_tf"
# The optional top-level packages, and the pip argument that installs each: one of the package's extras
# (pyproject.toml's [project.optional-dependencies]) or, without an extra, the package itself.
INSTALL = {
    "tf2onnx": f"'{DISTRIBUTION}[onnx]'",
    "onnx": f"'{DISTRIBUTION}[onnx]'",
    "onnxruntime": f"'{DISTRIBUTION}[onnx]'",
    "ai_edge_litert": f"'{DISTRIBUTION}[litert]'",
    "openvino": f"'{DISTRIBUTION}[openvino]'",
    "jax": f"'{DISTRIBUTION}[jax]'",
    "torch": f"'{DISTRIBUTION}[torch]'",
    "h5py": "h5py",
    "scipy": "scipy",
}


def install_line(module: str) -> str:
    """The command that installs the optional package of `module` (a dotted name inside one of INSTALL's)."""
    return f"pip install {INSTALL[module.split('.')[0]]}"


def optional_import(module: str, needed_for: str) -> ModuleType:
    """Imports the optional `module` (e.g. "tf2onnx.convert").

    Args:
        module: A dotted module name whose top-level package is one of INSTALL's.
        needed_for: What needs it, for the message (e.g. "export --format onnx").

    Raises:
        MissingExtraError: when it (or a package it needs) is not installed, with the install line.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None) or module
        raise MissingExtraError(f"{needed_for} needs the optional package {module.split('.')[0]} ({missing} is not "
                                f"installed); install it with: {install_line(module)}") from None

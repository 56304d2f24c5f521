"""Inference defaults the commands show in their --help: plain constants, importable without TensorFlow."""

DEFAULT_BATCH = 32  # images per step; ten crops make it 320 patches

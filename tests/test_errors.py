"""Tests of errors.py: error_summary on the errors TensorFlow really raises (eagerly and from a graph) and on others;
the error classes imported from errors.py alone."""

import ast
import pathlib

import pytest
import tensorflow as tf

from alexnet_tf.errors import error_summary


def raised(fn) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_an_eager_op_error_gives_the_ops_words_without_tensorflows_wrapping():
    error = raised(lambda: tf.io.decode_jpeg(tf.constant(b"\xff\xd8\xff\xe0" + b"x" * 100)))
    assert "{{function_node" in error.message and "[Op:DecodeJpeg]" in error.message  # what is taken away
    assert error_summary(error) == "jpeg::Uncompress failed. Invalid JPEG data or crop window."


def test_a_graph_error_gives_its_reason_not_the_trace_above_it():
    @tf.function
    def decode(data):
        return tf.io.decode_image(data, expand_animations=False)

    error = raised(lambda: decode(tf.constant(b"not an image")))
    assert "(most recent call last)" in error.message and "[[{{node" in error.message
    summary = error_summary(error)
    assert summary.startswith("Unknown image file format.") and "\n" not in summary and "File " not in summary


def test_a_failed_assertion_gives_its_message_or_its_data_on_one_line():
    @tf.function
    def check(label):
        tf.debugging.assert_non_negative(label, message="record without a label")
        return label

    assert error_summary(raised(lambda: check(tf.constant(-1)))) == "record without a label."
    eager = raised(lambda: tf.debugging.Assert(False, ["image declares", 6000, "x", 6000]))
    assert error_summary(eager) == "image declares 6000 x 6000"


def test_a_tfrecord_read_error_and_other_errors():
    def read(path):
        return list(tf.data.TFRecordDataset(path))

    error = raised(lambda: read(__file__))  # this file is not a TFRecord file
    assert error_summary(error).startswith("corrupted record at 0")
    assert error_summary(KeyError("conv1")) == "KeyError: 'conv1'"
    assert error_summary(OSError("first line\nsecond line")) == "OSError: first line"
    assert error_summary(ValueError("")) == "ValueError"
    assert error_summary(tf.errors.NotFoundError(None, None, "")) == "NotFoundError"
    assert len(error_summary(ValueError("x" * 1000))) == 300


def test_error_classes_are_imported_only_from_errors():
    # One import path for each error class: a module that re-exported one would offer a second.
    repo = pathlib.Path(__file__).resolve().parent.parent
    classes = {node.name for node in ast.parse((repo / "alexnet_tf" / "errors.py").read_text()).body
               if isinstance(node, ast.ClassDef)}
    elsewhere = []
    for path in sorted([*repo.glob("alexnet_tf/**/*.py"), *repo.glob("tests/*.py"), *repo.glob("benchmarks/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alexnet_tf") \
                    and node.module != "alexnet_tf.errors":
                elsewhere += [f"{path.relative_to(repo)}:{node.lineno} imports {a.name} from {node.module}"
                              for a in node.names if a.name in classes]
            elif isinstance(node, ast.Attribute) and node.attr in classes and ast.unparse(node.value) != "errors":
                elsewhere.append(f"{path.relative_to(repo)}:{node.lineno} reads {ast.unparse(node)}")
    assert classes >= {"DataError", "ConfigError", "ModelError"} and elsewhere == []

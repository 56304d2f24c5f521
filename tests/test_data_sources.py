"""Tests of the sources (folder, TFRecord, tfds) and of odd and bad files in the folder and TFRecord paths."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import bad_files, crafted_gif, encode, example, odd_files, photo, read_shards, write_folder, write_records
from PIL import Image

from alexnet_tf.config import DataConfig
from alexnet_tf.data import prepare_data
from alexnet_tf.data.preprocess import eval_square
from alexnet_tf.data.sources.folder import folder_source
from alexnet_tf.data.sources.tfds import tfds_source
from alexnet_tf.errors import DataError


def config(tmp_path, source, **kw) -> DataConfig:
    base = dict(source=source, cache_dir=str(tmp_path / "cache"), image_size=32, crop_size=24, shard_size=4,
                max_bad_fraction=0.5)
    base.update(kw)
    return DataConfig(**base)


def test_missing_or_empty_sources_fail_early_with_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_data(config(tmp_path, str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training folder"):
        prepare_data(config(tmp_path, str(tmp_path / "empty")))
    (tmp_path / "empty" / "train" / "n01").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no files"):
        prepare_data(config(tmp_path, str(tmp_path / "empty")))
    with pytest.raises(DataError, match="does not exist"):
        prepare_data(config(tmp_path, "tfrecord:" + str(tmp_path / "no_shards")))
    (tmp_path / "no_shards").mkdir()
    with pytest.raises(DataError, match="no train TFRecord shards"):
        prepare_data(config(tmp_path, "tfrecord:" + str(tmp_path / "no_shards")))


def test_flat_validation_folder_with_label_files(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 2, "n02": 2}, val_per_class=0)
    val = tmp_path / "src" / "val"
    val.mkdir()
    for i in range(3):
        (val / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(encode(Image.fromarray(photo(30, 30, i)), "JPEG"))
    with pytest.raises(DataError, match="no labels file"):
        folder_source(root)
    (val / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n" + "".join(f"ILSVRC2012_val_{i:08d},{w} 1 2 3 4 {w} 5 6 7 8\n"
                                                for i, w in enumerate(["n02", "n01", "n02"])))
    split = folder_source(root).splits["val"]
    labels = np.concatenate([y.numpy()[None] for _, _, y in split.records(lambda i: False)])
    names = [os.path.basename(split.name_of(i)) for i in range(split.count)]
    assert dict(zip(names, labels.tolist())) == {"ILSVRC2012_val_00000000.JPEG": 1, "ILSVRC2012_val_00000001.JPEG": 0,
                                                 "ILSVRC2012_val_00000002.JPEG": 1}
    os.remove(val / "LOC_val_solution.csv")
    labels_file = tmp_path / "caffe_val.txt"  # 'filename index' (0-based, sorted class folders), given explicitly
    labels_file.write_text("ILSVRC2012_val_00000000.JPEG 1\nILSVRC2012_val_00000001.JPEG n01\n")
    with pytest.raises(DataError, match="no label"):
        folder_source(root, val_labels=str(labels_file))
    labels_file.write_text(labels_file.read_text() + "ILSVRC2012_val_00000002.JPEG 1\n")
    assert folder_source(root, val_labels=str(labels_file)).splits["val"].count == 3
    # The devkit's ground truth: ILSVRC2012_IDs (here 1 = n02, 2 = n01) in file order, mapped through meta.mat.
    scipy_io = pytest.importorskip("scipy.io")
    truth = tmp_path / "devkit" / "data" / "ILSVRC2012_validation_ground_truth.txt"
    truth.parent.mkdir(parents=True)
    truth.write_text("1\n2\n1\n")
    with pytest.raises(DataError, match="meta.mat"):
        folder_source(root, val_labels=str(truth))
    synsets = np.array([(1, "n02"), (2, "n01")], dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O")])
    scipy_io.savemat(str(truth.parent / "meta.mat"), {"synsets": synsets})
    split = folder_source(root, val_labels=str(truth)).splits["val"]
    assert [int(y) for _, _, y in split.records(lambda i: False)] == [1, 0, 1]


def test_odd_and_bad_files_in_the_folder_path(tmp_path, caplog):
    odd, bad = odd_files(), bad_files()
    root = write_folder(str(tmp_path / "src"), {"n01": 3, "n02": 3}, extra_train={"n01": odd, "n02": bad})
    with caplog.at_level(logging.WARNING, logger="alexnet_tf.data"):
        prepared = prepare_data(config(tmp_path, root), progress=False)
    assert prepared.num_train == 6 + len(odd) and prepared.num_bad == len(bad)
    with open(prepared.manifest_path) as f:
        manifest = json.load(f)
    listed = sorted(os.path.basename(item["file"]) for item in manifest["undecodable_files"])
    assert listed == sorted(bad)
    # Each reason is the decoder's own words, not an exception's class name or TensorFlow's wrapping.
    reasons = {os.path.basename(item["file"]): item["reason"] for item in manifest["undecodable_files"]}
    assert reasons["empty.JPEG"] == "empty file"
    assert reasons["text.JPEG"] == "image_bytes is not a JPEG, PNG, GIF or BMP image (unrecognised header)"
    assert "Invalid JPEG data" in reasons["truncated.JPEG"] and "Invalid JPEG data" in reasons["corrupt.JPEG"]
    assert not any("{{" in r or "[Op:" in r for r in reasons.values())
    assert manifest["splits"]["train"]["counts_per_class"] == {"n01": 3 + len(odd), "n02": 3}
    for name in bad:  # each warning names its file
        assert any(name in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING), name
    # Odd files are in the shards as RGB squares equal to decoding the original (within JPEG re-encoding).
    records = {os.path.basename(r["filename"]): r for r in read_shards(prepared.train_files)}
    for name, data in odd.items():
        expected = eval_square(tf.constant(data), 32).numpy().astype(int)
        assert records[name]["image"].shape == (32, 32, 3) and records[name]["label"] == 0
        assert np.abs(records[name]["image"].astype(int) - expected).mean() < 4, name


def test_file_names_that_are_not_utf8_are_read_like_any_other(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 2})
    name = b"caf\xe9.JPEG"  # Latin-1, not valid UTF-8: os.walk gives it with a surrogate escape
    with open(os.path.join(os.fsencode(root), b"train", b"n01", name), "wb") as f:
        f.write(encode(Image.fromarray(photo(40, 50, 7)), "JPEG"))
    prepared = prepare_data(config(tmp_path, root), progress=False)
    assert prepared.num_train == 3 and prepared.num_bad == 0
    filenames = [tf.train.Example.FromString(r).features.feature["image/filename"].bytes_list.value[0]
                 for r in tf.data.TFRecordDataset(list(prepared.train_files)).as_numpy_iterator()]
    assert name in [os.path.basename(f) for f in filenames]  # the record keeps the file's own bytes


def test_a_decompression_bomb_is_explained_in_one_line():
    from alexnet_tf.data.shards import explain_failure

    data = bytearray(encode(Image.fromarray(photo(40, 50)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2  # the frame header declares 60,000 x 60,000
    assert explain_failure(bytes(data)) == "image declares 60000 x 60000 pixels, above the limit of 64000000 pixels"


def test_a_gif_whose_frame_is_larger_than_its_screen_never_enters_prepared_data(tmp_path):
    # A 16 x 16 screen holding a 12,000 x 12,000 frame (the decoder allocates the frame).
    bomb = {"bomb.gif": crafted_gif((16, 16), [(12000, 12000)]),
            "animated.gif": crafted_gif((40, 30), [(40, 30)] * 200)}
    root = write_folder(str(tmp_path / "src"), {"n01": 3, "n02": 3}, extra_train={"n02": bomb})
    prepared = prepare_data(config(tmp_path, root), progress=False)
    with open(prepared.manifest_path) as f:
        manifest = json.load(f)
    reasons = {os.path.basename(item["file"]): item["reason"] for item in manifest["undecodable_files"]}
    assert reasons == {"bomb.gif": "image declares 12000 x 12000 pixels, above the limit of 64000000 pixels"}
    assert manifest["splits"]["train"]["counts_per_class"] == {"n01": 3, "n02": 4}  # the animation's first frame


def test_a_class_folder_linked_into_the_dataset_is_refused_by_name(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 2, "n02": 2, "n03": 2})
    # Elsewhere: a class assembled from a link is a class like any other.
    outside = write_folder(str(tmp_path / "other"), {"n04": 2}, val_per_class=0)
    os.symlink(os.path.join(outside, "train", "n04"), os.path.join(root, "train", "n04"))
    os.makedirs(os.path.join(root, "val", "n04"))
    os.symlink(os.path.join(root, "val", "n01", "n01_500.JPEG"), os.path.join(root, "val", "n04", "v.JPEG"))
    prepared = prepare_data(config(tmp_path, root), progress=False)
    assert prepared.vocabulary.wnids == ("n01", "n02", "n03", "n04") and prepared.num_train == 8
    # `train/zloop -> .` became a fourth class holding every image.
    os.symlink(".", os.path.join(root, "train", "zloop"))
    with pytest.raises(DataError, match=r"class folder '.*train/zloop' is a symbolic link to '.*train', inside the "
                                        r"dataset .*remove the link"):
        prepare_data(config(tmp_path, root, prepared_dir=str(tmp_path / "again")), progress=False)


def test_too_many_bad_files_stop_with_a_clear_error(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 3}, extra_train={"n01": {"broken.JPEG": b"garbage"}})
    with pytest.raises(DataError, match=r"broken\.JPEG.*Raise data\.max_bad_fraction and rerun"):
        prepare_data(config(tmp_path, root, max_bad_fraction=0.001), progress=False)
    # What the message promises: with a higher limit the same folder resumes, and the bad file is listed.
    prepared = prepare_data(config(tmp_path, root, max_bad_fraction=0.5), progress=False)
    assert prepared.num_train == 3 and prepared.num_bad == 1
    # A resumed run checks the bad files of the shards it finds finished against its own limit too.
    os.remove(prepared.manifest_path)  # as if interrupted at the very end
    with pytest.raises(DataError, match=r"1 of 6 files could not be decoded.*broken\.JPEG"):
        prepare_data(config(tmp_path, root, max_bad_fraction=0.001), progress=False)


def test_foreign_tfrecords_with_odd_and_bad_records(tmp_path, caplog):
    """Inception-style shards: labels from 1, synsets present; odd records decode, bad ones are named."""
    good = [encode(Image.fromarray(photo(40, 50, i)), "JPEG") for i in range(4)]
    odd, bad = odd_files(), bad_files()
    train = [example(g, 2 - i % 2, ["n01", "n02"][1 - i % 2], f"good{i}") for i, g in enumerate(good)]
    train += [example(data, 2, "n02", name) for name, data in odd.items()]
    train += [example(data, 1, "n01", name) for name, data in bad.items()]
    train.append(example(None, 1, "n01", "no_image"))  # a record without image/encoded
    folder = tmp_path / "shards"
    folder.mkdir()
    write_records(str(folder / "train-00000-of-00002"), train[:7])
    write_records(str(folder / "train-00001-of-00002"), train[7:])
    write_records(str(folder / "validation-00000-of-00001"), [example(good[0], 1, "n01"), example(good[1], 2, "n02")])
    with caplog.at_level(logging.WARNING, logger="alexnet_tf.data"):
        prepared = prepare_data(config(tmp_path, f"tfrecord:{folder}"), progress=False)
    assert prepared.vocabulary.wnids == ("n01", "n02")
    assert prepared.num_train == 4 + len(odd) and prepared.num_val == 2 and prepared.num_bad == len(bad) + 1
    records = read_shards(prepared.train_files)
    assert all(r["label"] == ["n01", "n02"].index(r["synset"]) for r in records)  # re-numbered from synsets
    with open(prepared.manifest_path) as f:
        names = [item["file"] for item in json.load(f)["undecodable_files"]]
    # Named by shard and record number: records 2..6 of the second shard are the bad ones.
    expected = [f"{folder / 'train-00001-of-00002'} record {k}" for k in range(2, 7)]
    assert names == expected
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert all(n in warned for n in names)
    # Our own prepared folder, given as tfrecord:PATH, is used as it is (no second preparation).
    again = prepare_data(config(tmp_path, f"tfrecord:{prepared.directory}"), progress=False)
    assert again.directory == prepared.directory and again.train_files == prepared.train_files


def test_tfds_adapter_on_a_locally_built_dataset(tmp_path):
    import tensorflow_datasets as tfds
    from etils import epath

    class AlexnetTfTinyShapes(tfds.core.GeneratorBasedBuilder):
        """Three classes of small images, built on disk in tfds' own format."""

        VERSION = tfds.core.Version("1.0.0")
        pkg_dir_path = epath.Path(tmp_path)  # tfds would look for metadata beside the defining package

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "label": tfds.features.ClassLabel(names=["circle", "square", "star"])}),
                supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(9, 0), "validation": self._generate_examples(3, 100)}

        def _generate_examples(self, n, offset):
            for i in range(n):
                yield i, {"image": photo(20 + i, 30, offset + i), "label": i % 3}

    data_dir = str(tmp_path / "tfds")
    source = tfds_source("alexnet_tf_tiny_shapes", data_dir=data_dir)  # builds it (download_and_prepare)
    assert source.vocabulary.wnids == ("circle", "square", "star")
    assert source.splits["train"].count == 9 and source.splits["val"].count == 3
    prepared = prepare_data(config(tmp_path, "tfds:alexnet_tf_tiny_shapes", tfds_data_dir=data_dir, image_size=20,
                                   crop_size=16), progress=False)
    records = read_shards(prepared.train_files)
    assert sorted(r["label"] for r in records) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert prepared.num_val == 3 and records[0]["image"].shape == (20, 20, 3)
    with pytest.raises(DataError, match="no dataset"):
        tfds_source("alexnet_tf_no_such_dataset", data_dir=data_dir)

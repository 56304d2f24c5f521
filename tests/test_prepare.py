"""Tests of `python -m alexnet_tf.prepare`: the command, and a preparation killed mid-way that resumes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from alexnet_tf.config import DataConfig
from alexnet_tf.data import DataError, prepare_data
from alexnet_tf.prepare import main
from helpers import read_shards, write_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_explains_the_sources(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("demo", "tfrecord:PATH", "tfds:NAME", "resumes", "max_bad_fraction", "--workers"):
        assert word in text, word


def test_command_prepares_and_reports_errors(tmp_path, capsys):
    root = write_folder(str(tmp_path / "src"), {"n01": 3, "n02": 2})
    args = ["--quiet", "--set", f"data.source={root}", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", "data.image_size=72", "--set", "data.crop_size=64"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train: 5 images" in out and "val:   4 images" in out
    assert main(["--quiet", "--set", f"data.source={tmp_path / 'missing'}"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["--set", "data.no_such_key=1"]) == 2
    capsys.readouterr()
    # More demo classes than there are shapes: a message naming the key, not a traceback.
    assert main(["--quiet", "--set", "data.demo_classes=13", "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 1
    assert "data.demo_classes is 13" in capsys.readouterr().err


SLOW_PREPARE = textwrap.dedent("""
    import sys, time
    import tensorflow as tf
    from alexnet_tf.config import DataConfig
    from alexnet_tf.data import sources, shards

    original = sources.folder_source
    def slow_source(*args, **kwargs):  # the same data, delivered slowly, so the kill lands mid-way
        source = original(*args, **kwargs)
        for split in source.splits.values():
            records = split.records
            def slowed(skip, records=records):
                def pause(i, b, y):
                    tf.py_function(lambda: time.sleep(0.03), [], [])
                    return i, b, y
                return records(skip).map(pause)
            split.records = slowed
        return source
    shards.folder_source = slow_source
    cfg = DataConfig(source=sys.argv[1], prepared_dir=sys.argv[2], image_size=32, crop_size=24, shard_size=4)
    shards.prepare_data(cfg, progress=False, workers=1)
""")


def test_killed_preparation_resumes_without_half_written_shards(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 20, "n02": 20}, val_per_class=2)
    out = str(tmp_path / "prepared")
    script = tmp_path / "slow_prepare.py"
    script.write_text(SLOW_PREPARE)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, str(script), root, out], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            done = [f for f in os.listdir(out) if f.endswith(".tfrecord")] if os.path.isdir(out) else []
            if len(done) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"preparation ended before it could be killed: {proc.stderr.read()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    names = os.listdir(out)
    finished = sorted(f for f in names if f.endswith(".tfrecord"))
    assert 2 <= len(finished) < 10 and "manifest.json" not in names
    # Every shard under a final name is complete: it holds as many records as its sidecar says.
    for shard in finished:
        with open(os.path.join(out, shard[: -len(".tfrecord")] + ".json")) as f:
            assert len(read_shards([os.path.join(out, shard)])) == json.load(f)["count"] == 4
    with pytest.raises(DataError, match="did not finish"):  # the unfinished folder is not taken for foreign shards
        prepare_data(DataConfig(source=f"tfrecord:{out}", cache_dir=str(tmp_path / "c"), image_size=32,
                                crop_size=24), progress=False)
    cfg = DataConfig(source=root, prepared_dir=out, image_size=32, crop_size=24, shard_size=4)
    resumed = prepare_data(cfg, progress=False)
    fresh = prepare_data(DataConfig(source=root, prepared_dir=str(tmp_path / "fresh"), image_size=32, crop_size=24,
                                    shard_size=4), progress=False)
    assert resumed.num_train == 40 and len(resumed.train_files) == 10
    assert not [f for f in os.listdir(out) if ".tmp-" in f]  # the killed run's temporary shard was removed
    for a, b in zip(resumed.train_files + resumed.val_files, fresh.train_files + fresh.val_files):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), a  # byte-identical to an uninterrupted preparation
    for key in ("mean_image", "eigvals", "eigvecs"):
        assert (getattr(resumed.stats, key) == getattr(fresh.stats, key)).all()


def test_resuming_with_other_data_is_refused(tmp_path):
    root = write_folder(str(tmp_path / "src"), {"n01": 3, "n02": 2})
    cfg = DataConfig(source=root, prepared_dir=str(tmp_path / "p"), image_size=32, crop_size=24, shard_size=2)
    prepare_data(cfg, progress=False)
    os.remove(os.path.join(tmp_path, "p", "manifest.json"))  # as if interrupted at the very end
    write_folder(root, {"n01": 4, "n02": 2})  # one more image in n01
    with pytest.raises(DataError, match="other data or settings"):
        prepare_data(cfg, progress=False)

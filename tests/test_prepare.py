"""Tests of `python -m alexnet_tf.prepare`: the command, a preparation killed mid-way that resumes, and damaged
shards found (sizes at load, checksums by --verify) and repaired one by one."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import read_shards, write_folder

from alexnet_tf import cli
from alexnet_tf.config import DataConfig
from alexnet_tf.data import load_prepared, prepare_data
from alexnet_tf.data.prepared import file_sha256
from alexnet_tf.errors import DataError
from alexnet_tf.prepare import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_explains_the_sources(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("demo", "tfrecord:PATH", "tfds:NAME", "resumes", "max_bad_fraction", "--workers", "--verify",
                 "--no-progress", "exit codes:", "  2   bad input"):
        assert word in text, word


def test_command_prepares_and_reports_errors(tmp_path, capsys):
    root = write_folder(str(tmp_path / "src"), {"n01": 3, "n02": 2})
    args = ["--quiet", "--set", f"data.source={root}", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--set", "data.image_size=72", "--set", "data.crop_size=64"]
    assert cli.run(main, args) == 0
    out = capsys.readouterr().out
    assert "train: 5 images" in out and "val:   4 images" in out
    # Data errors are bad input, exit 2 (they were 1 before the shared runner).
    assert cli.run(main, ["--quiet", "--set", f"data.source={tmp_path / 'missing'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.run(main, ["--set", "data.no_such_key=1"]) == 2
    capsys.readouterr()
    # More demo classes than there are shapes: a message naming the key, not a traceback.
    assert cli.run(main, ["--no-progress", "--set", "data.demo_classes=13", "--set",
                          f"data.cache_dir={tmp_path / 'cache'}"]) == 2
    assert "data.demo_classes is 13" in capsys.readouterr().err


@pytest.mark.slow
def test_command_line_data_error_is_quiet(tmp_path):
    # (--help without TensorFlow and exit 2 for every command: tests/test_cli.py.) What TensorFlow prints while it
    # loads must not bury the one error line.
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    failed = subprocess.run([sys.executable, "-m", "alexnet_tf.prepare", "--no-progress", "--set",
                             f"data.source={tmp_path / 'missing'}"], env=env, capture_output=True, text=True,
                            timeout=120)
    lines = failed.stderr.strip().splitlines()
    assert failed.returncode == 2 and len(lines) == 1, failed.stderr[-2000:]
    assert lines[0].startswith("error: data source folder") and "does not exist" in lines[0]


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
    sources.folder_source = slow_source
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


# ---------------------------------------------------------------------------------------------------------------------
# Damaged shards.

def _prepared_folder(tmp_path, name="p"):
    """A small prepared folder (5 train shards, 2 val shards), its DataConfig, and the same as --set options."""
    root = str(tmp_path / "src")
    if not os.path.isdir(root):
        write_folder(root, {"n01": 5, "n02": 5}, val_per_class=2)
    cfg = DataConfig(source=root, prepared_dir=str(tmp_path / name), image_size=72, crop_size=64, shard_size=2)
    sets = [f"data.source={root}", f"data.prepared_dir={tmp_path / name}", "data.image_size=72",
            "data.crop_size=64", "data.shard_size=2"]
    return cfg, [a for s in sets for a in ("--set", s)], prepare_data(cfg, progress=False)


def _identity(paths):
    """(inode, mtime) of each file: a file rewritten or replaced changes one of them."""
    return {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths}


def _first_record_length(data: bytes) -> int:
    """Bytes of a TFRecord file's first record: 8 (length) + 4 (its CRC) + the record + 4 (the record's CRC)."""
    return 8 + 4 + int.from_bytes(data[:8], "little") + 4


def test_manifest_records_each_shards_size_and_sha256(tmp_path):
    _, _, prepared = _prepared_folder(tmp_path)
    with open(prepared.manifest_path) as f:
        recorded = json.load(f)["shards"]
    files = prepared.train_files + prepared.val_files
    assert len(files) == 7 and sorted(recorded) == sorted(os.path.basename(p) for p in files)
    for path in files:
        entry = recorded[os.path.basename(path)]
        assert entry["bytes"] == os.path.getsize(path)
        assert entry["sha256"] == file_sha256(path)
    assert {c.path for c in prepared.shards} == set(files)


def test_truncated_or_missing_shard_is_named_before_training(tmp_path):
    _, _, prepared = _prepared_folder(tmp_path)
    victim = prepared.train_files[2]
    size = os.path.getsize(victim)
    os.truncate(victim, size - 100)
    with pytest.raises(DataError, match=rf"{os.path.basename(victim)} is {size - 100} bytes, the manifest records "
                                        rf"{size} \(truncated\).*python -m alexnet_tf\.prepare --verify"):
        load_prepared(prepared.directory)
    os.remove(victim)
    with pytest.raises(DataError, match=rf"{os.path.basename(victim)} is missing.*--verify"):
        load_prepared(prepared.directory)


@pytest.mark.parametrize("damage", ["truncate", "overwrite", "delete"])
def test_verify_repairs_just_the_damaged_shard(tmp_path, capsys, damage):
    _, sets, prepared = _prepared_folder(tmp_path)
    _, _, fresh = _prepared_folder(tmp_path, "fresh")
    victim = prepared.train_files[3]
    others = [p for p in prepared.train_files + prepared.val_files if p != victim]
    before = _identity(others)
    if damage == "truncate":
        os.truncate(victim, os.path.getsize(victim) // 2)
    elif damage == "overwrite":  # same size: only the checksum sees it
        with open(victim, "r+b") as f:
            f.seek(40)
            f.write(b"\0" * 64)
    else:
        os.remove(victim)
    assert cli.run(main, ["--verify", "--quiet", *sets]) == 0
    out = capsys.readouterr().out
    assert "verified 7 shards" in out and "1 damaged, re-prepared" in out and os.path.basename(victim) in out
    assert _identity(others) == before  # not rewritten, not even touched
    with open(victim, "rb") as a, open(fresh.train_files[3], "rb") as b:
        assert a.read() == b.read()  # what a fresh preparation writes
    repaired = load_prepared(prepared.directory)
    assert repaired.num_train == prepared.num_train and repaired.shards == prepared.shards
    assert (repaired.stats.mean_image == prepared.stats.mean_image).all()
    assert cli.run(main, ["--verify", "--quiet", *sets]) == 0  # and a second --verify finds nothing
    assert "all intact" in capsys.readouterr().out


def test_verify_without_the_original_data_names_the_shard_and_removes_nothing(tmp_path, capsys):
    _, _, prepared = _prepared_folder(tmp_path)
    victim = prepared.val_files[1]
    os.truncate(victim, 10)
    assert cli.run(main, ["--verify", "--quiet", "--set", f"data.source=tfrecord:{prepared.directory}",
                          "--set", "data.image_size=72", "--set", "data.crop_size=64"]) == 2
    err = capsys.readouterr().err
    assert os.path.basename(victim) in err and "original data" in err
    assert os.path.getsize(victim) == 10 and os.path.isfile(prepared.manifest_path)


def test_verify_refuses_a_changed_source_before_removing_anything(tmp_path, capsys):
    cfg, sets, prepared = _prepared_folder(tmp_path)
    victim = prepared.train_files[0]
    os.truncate(victim, 100)
    write_folder(cfg.source, {"n01": 6, "n02": 5})  # one more image: other data than was prepared
    assert cli.run(main, ["--verify", "--quiet", *sets]) == 2
    assert "other data or settings" in capsys.readouterr().err
    assert os.path.getsize(victim) == 100 and os.path.isfile(prepared.manifest_path)


def test_manifest_without_checksums_still_loads_and_verify_records_them(tmp_path, capsys):
    _, sets, prepared = _prepared_folder(tmp_path)
    # As the previous version wrote them: no sizes or checksums in the manifest or the sidecars.
    with open(prepared.manifest_path) as f:
        manifest = json.load(f)
    recorded = manifest.pop("shards")
    with open(prepared.manifest_path, "w") as f:
        json.dump(manifest, f)
    for path in prepared.train_files + prepared.val_files:
        sidecar = path[: -len(".tfrecord")] + ".json"
        with open(sidecar) as f:
            data = json.load(f)
        del data["bytes"], data["sha256"]
        with open(sidecar, "w") as f:
            json.dump(data, f)
    old = load_prepared(prepared.directory)  # loads, without checks
    assert old.shards == () and old.num_train == prepared.num_train
    # A shard cut at a record boundary reads without error: only the sidecar's record count tells.
    victim = prepared.train_files[1]
    with open(victim, "rb") as f:
        os.truncate(victim, _first_record_length(f.read()))
    assert len(read_shards([victim])) == 1
    others = [p for p in prepared.train_files + prepared.val_files if p != victim]
    before = _identity(others)
    assert cli.run(main, ["--verify", "--quiet", *sets]) == 0
    out = capsys.readouterr().out
    assert "1 damaged" in out and "holds 1 records, its sidecar records 2" in out
    assert _identity(others) == before
    with open(prepared.manifest_path) as f:
        assert json.load(f)["shards"] == recorded  # recorded now, as a fresh preparation records them
    # Without damage, --verify of an old manifest just records the checksums.
    with open(prepared.manifest_path, "w") as f:
        json.dump(manifest, f)
    assert cli.run(main, ["--verify", "--quiet", *sets]) == 0
    out = capsys.readouterr().out
    assert "all intact" in out and "recorded the size and SHA-256 of 7 shards" in out
    with open(prepared.manifest_path) as f:
        assert json.load(f)["shards"] == recorded


def test_a_full_disk_while_generating_or_writing_shards_exits_2_naming_the_file(tmp_path, monkeypatch, capsys):
    # Before: PIL's and TensorFlow's tracebacks, rc 1.
    import errno

    import tensorflow as tf
    from PIL import Image

    real_save, saves = Image.Image.save, []

    def save(image, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(image, path, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    cache = str(tmp_path / "cache")
    args = ["--set", f"data.cache_dir={cache}", "--set", "data.demo_classes=2", "--set", "data.demo_train_per_class=4",
            "--set", "data.demo_val_per_class=2", "--no-progress"]
    assert cli.run(main, args) == 2
    err = capsys.readouterr().err
    assert f"in {cache!r}: no space left on the disk ({saves[4]}: " in err and "are free) or set data.cache_dir" in err
    assert "Traceback" not in err, err
    monkeypatch.undo()

    class FullWriter(tf.io.TFRecordWriter):
        def write(self, record):
            raise tf.errors.ResourceExhaustedError(None, None, "train-00000-of-00002.tmp-1; No space left on device")

    monkeypatch.setattr(tf.io, "TFRecordWriter", FullWriter)
    assert cli.run(main, args) == 2
    err = capsys.readouterr().err
    assert "no space left on the disk (train-00000-of-00002.tmp-1; No space left on device)" in err, err
    assert "Traceback" not in err

"""Tests of the tf.data service input (alexnet_tf.data.service, `python -m alexnet_tf.dataservice`): a dispatcher and
two workers on loopback train a tiny deterministic run with the same weights as the local pipeline."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY
from test_fault_tolerance import REPO, _env, _free_ports, assert_same_final_weights

from alexnet_tf.config import load_config
from alexnet_tf.data.service import in_order
from alexnet_tf.errors import ConfigError


def test_in_order_restores_the_numbered_order():
    rng = np.random.default_rng(0)
    numbers = rng.permutation(40)
    pairs = tf.data.Dataset.from_tensor_slices((numbers, numbers * 10, {"x": numbers.astype(np.float32) / 2}))
    pairs = pairs.map(lambda n, y, b: (n, (b, y)))
    got = [(float(b["x"]), int(y)) for b, y in in_order(pairs)]
    assert got == [(n / 2, n * 10) for n in range(40)]


def test_in_order_refuses_a_missing_number():
    pairs = tf.data.Dataset.from_tensor_slices((np.array([0, 2, 3], np.int64), np.array([1, 2, 3])))
    with pytest.raises(Exception, match="never batch 1"):
        list(in_order(pairs))


@pytest.mark.parametrize("address", ["127.0.0.1:5050", "grpc://host", "grpc://host:port", "http://h:1"])
def test_a_bad_service_address_names_the_key(address):
    with pytest.raises(ConfigError, match="data.service.*grpc://HOST:PORT"):
        load_config(TINY, [f"data.service={address}"])


def test_a_good_service_address_is_accepted():
    assert load_config(TINY, ["data.service=grpc://10.0.0.5:5050"]).data.service == "grpc://10.0.0.5:5050"


def _start(args: list[str]) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "alexnet_tf.dataservice", *args], env=_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = process.stdout.readline()  # the part prints one line once it serves
    assert process.poll() is None, line + process.stdout.read()
    return process


def _train(cache_dir: str, run_dir: str, *extra: str) -> subprocess.CompletedProcess:
    sets = [f"data.cache_dir={cache_dir}", "runtime.deterministic=true", "train.epochs=2",
            "train.ten_crop_at_end=false", "train.export_at_end=false", "data.demo_train_per_class=24", *extra]
    command = [sys.executable, "-m", "alexnet_tf.train", "--config", TINY, "--run-dir", run_dir, "--no-progress",
               *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(command, env=_env(), cwd=REPO, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_training_through_a_dispatcher_and_two_workers_matches_the_local_pipeline(tmp_path):
    cache_dir, local_run, served_run = (str(tmp_path / name) for name in ("cache", "local", "served"))
    local = _train(cache_dir, local_run)  # also prepares the data the workers read
    dispatcher_port, *worker_ports = _free_ports(3)
    workers = [f"127.0.0.1:{p}" for p in worker_ports]
    parts = [_start(["dispatcher", "--port", str(dispatcher_port), "--workers", ",".join(workers)])]
    try:
        for address, port in zip(workers, worker_ports):
            parts.append(_start(["worker", "--dispatcher", f"127.0.0.1:{dispatcher_port}", "--port", str(port),
                                 "--address", address]))
        time.sleep(1)  # the workers register with the dispatcher
        served = _train(cache_dir, served_run, f"data.service=grpc://127.0.0.1:{dispatcher_port}")
    finally:
        for part in parts:
            part.terminate()
            part.wait(timeout=60)
    assert_same_final_weights(local_run, served_run)
    speed = re.compile(r" \| [0-9.]+ img/s, [0-9.]+ s")  # the one part of an epoch line that may differ
    local_lines, served_lines = ([speed.sub("", line) for line in done.stdout.splitlines() if line.startswith("epoch ")]
                                 for done in (local, served))
    assert len(local_lines) == 2 and served_lines == local_lines, (local_lines, served_lines)


@pytest.mark.slow
def test_dynamic_sharding_gives_every_step_a_batch_of_the_data(tmp_path):
    """Without runtime.deterministic: files split among two in-process workers as they ask; the pipeline repeats so
    an epoch's steps always get batches (a worker drops its own last partial batch)."""
    from alexnet_tf.config import replace
    from alexnet_tf.data import prepare_data, train_dataset
    from alexnet_tf.data.service import dispatcher, worker

    dispatcher_port, *worker_ports = _free_ports(3)
    servers = [dispatcher(dispatcher_port)]
    servers += [worker(f"127.0.0.1:{dispatcher_port}", port, f"127.0.0.1:{port}") for port in worker_ports]
    config = load_config(TINY, [f"data.cache_dir={tmp_path}", "data.demo_train_per_class=24"])
    prepared = prepare_data(config.data, progress=False)
    local = [labels.numpy() for _, labels in train_dataset(prepared, config.data, 8, seed=0, epoch=1)]
    served_cfg = replace(config, data={"service": f"grpc://127.0.0.1:{dispatcher_port}"}).data
    served = train_dataset(prepared, served_cfg, 8, seed=0, epoch=1, deterministic=False).take(2 * len(local))
    batches = [(batch["image"].numpy(), labels.numpy()) for batch, labels in served]
    assert len(batches) == 2 * len(local)
    assert all(images.shape == (8, 64, 64, 3) and images.dtype == np.uint8 for images, _ in batches)
    first_pass = np.concatenate([labels for _, labels in batches[:len(local)]])
    assert set(first_pass) <= set(np.concatenate(local)) and len(set(first_pass)) > 1
    del servers

"""`python -m alexnet_tf.dataservice dispatcher|worker`: the parts of a tf.data service that decode and augment the
training batches on other machines (thin entry over alexnet_tf.data.service).

Nothing heavy is imported before the arguments are parsed, so --help answers at once.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.errors import EXIT_BAD_INPUT, InputError

DESCRIPTION = """\
Starts one part of a tf.data service, which makes the training batches (reading the prepared shards, decode-and-
crop, reflection, the lighting draws) on machines other than the trainer's. Each part runs until it is stopped
(Ctrl-C or SIGTERM).

  dispatcher   keeps the list of workers and hands them the trainer's pipeline; one per service
  worker       runs the pipeline; start one per machine (or several) that has CPUs to spare. It reads the
               shards at the trainer's paths: share the prepared folder (NFS, ...) or copy it to the same path

Train through it with --set data.service=grpc://DISPATCHER_HOST:PORT. With runtime.deterministic=true the
batches are sharded statically (worker k of N makes batches k, k+N, ...) and put back in the local order, so the run
gives the same results as without the service; that needs the dispatcher to know its workers (--workers).
See docs/training.md ("Input on other machines").

Examples:
  python -m alexnet_tf.dataservice dispatcher --port 5050 --workers cpu1:5051,cpu2:5051
  python -m alexnet_tf.dataservice worker --dispatcher trainer-host:5050 --port 5051 --address cpu1:5051
  python -m alexnet_tf.train --set data.service=grpc://trainer-host:5050
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m alexnet_tf.dataservice", description=DESCRIPTION,
                                     epilog=cli.exit_codes_help(EXIT_BAD_INPUT),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True, metavar="dispatcher|worker")
    dispatcher = parts.add_parser("dispatcher", help="start the dispatcher")
    dispatcher.add_argument("--port", type=int, default=5050, help="port to listen on, all interfaces (default 5050)")
    dispatcher.add_argument("--workers", default="",
                            help="the fixed worker list, HOST:PORT,HOST:PORT,... (needed for deterministic runs: "
                                 "each entry must be a worker's --address)")
    dispatcher.add_argument("--work-dir", default="",
                            help="a folder for the dispatcher's journal: a restarted dispatcher resumes its jobs")
    worker = parts.add_parser("worker", help="start a worker")
    worker.add_argument("--dispatcher", required=True, help="the dispatcher, HOST:PORT (or grpc://HOST:PORT)")
    worker.add_argument("--port", type=int, default=5051, help="port to listen on (default 5051)")
    worker.add_argument("--address", default="",
                        help="HOST:PORT by which the dispatcher and the trainer reach this worker (default: this "
                             "machine's name and --port)")
    return parser.parse_args(argv)


def _host_port(text: str, what: str) -> str:
    host, _, port = text.removeprefix("grpc://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{what}: got {text!r}; give HOST:PORT, e.g. 10.0.0.5:5050")
    return f"{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    """Starts the part and serves until interrupted; returns the exit status."""
    args = parse_args(argv)
    if args.part == "dispatcher":
        workers = [_host_port(w.strip(), "--workers") for w in args.workers.split(",") if w.strip()]
    else:
        dispatcher = _host_port(args.dispatcher, "--dispatcher")
        address = _host_port(args.address, "--address") if args.address else f"{socket.getfqdn()}:{args.port}"
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.data import service

    if args.part == "dispatcher":
        server = service.dispatcher(args.port, workers, args.work_dir)
        print(f"dispatcher: train with --set data.service=grpc://{socket.getfqdn()}:{args.port}"
              + (f"; fixed workers {', '.join(workers)}" if workers else "; any worker may join (dynamic sharding)"),
              flush=True)
    else:
        server = service.worker(dispatcher, args.port, address)
        print(f"worker {address}: serving the dispatcher {dispatcher}", flush=True)
    try:
        server.join()
    except KeyboardInterrupt:
        print(f"{args.part}: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))

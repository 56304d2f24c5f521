"""How fast each command answers `--help` (issue: under 1 s, without importing TensorFlow), next to the time that
importing TensorFlow alone takes, measured side by side in fresh processes.

    python benchmarks/cli_startup.py [--repeats 3]

Prints the median wall time of `python -m alexnet_tf.<command> --help` for every command, of `import alexnet_tf`,
of the bare interpreter (what a busy machine adds to every row) and of `import tensorflow` (what --help used to
pay), and their ratio; a --help at 1 s or more is marked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every command module (as tests/test_cli.py finds them): the top-level modules that run as python -m.
COMMANDS = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "alexnet_tf")) if name.endswith(".py")
                  and '__name__ == "__main__"' in open(os.path.join(REPO, "alexnet_tf", name), encoding="utf-8").read())


def wall_time(args: list[str], repeats: int) -> float:
    """Median wall seconds of running `python args` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is shown")
    args = parser.parse_args()
    baseline = wall_time(["-c", "import tensorflow"], args.repeats)
    rows = [("-c pass (the interpreter alone)", wall_time(["-c", "pass"], args.repeats)),
            ("import alexnet_tf", wall_time(["-c", "import alexnet_tf"], args.repeats))]
    rows += [(f"-m alexnet_tf.{c} --help", wall_time(["-m", f"alexnet_tf.{c}", "--help"], args.repeats))
             for c in COMMANDS]
    rows.append(("import tensorflow (for comparison)", baseline))
    width = max(len(name) for name, _ in rows)
    print(f"{'python ...'.ljust(width)}  median wall   share of 'import tensorflow'")
    for name, seconds in rows:
        slow = "   over the 1 s budget" if "--help" in name and seconds >= 1.0 else ""
        print(f"{name.ljust(width)}  {seconds:9.3f} s   {seconds / baseline:6.1%}{slow}")


if __name__ == "__main__":
    main()

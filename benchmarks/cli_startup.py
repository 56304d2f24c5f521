"""How fast each command answers `--help` (issue: under 1 s, without importing TensorFlow), next to the time that
importing TensorFlow alone takes, measured side by side in fresh processes.

    python benchmarks/cli_startup.py [--repeats 3]

Prints the median wall time of `python -m alexnet_tf.<command> --help` for every command, of `import alexnet_tf`,
and of `import tensorflow` (what --help used to pay), and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("train", "prepare", "evaluate", "predict", "visualize", "export", "convert", "features")


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
    rows = [("import alexnet_tf", wall_time(["-c", "import alexnet_tf"], args.repeats))]
    rows += [(f"-m alexnet_tf.{c} --help", wall_time(["-m", f"alexnet_tf.{c}", "--help"], args.repeats))
             for c in COMMANDS]
    rows.append(("import tensorflow (for comparison)", baseline))
    width = max(len(name) for name, _ in rows)
    print(f"{'python ...'.ljust(width)}  median wall   share of 'import tensorflow'")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:9.3f} s   {seconds / baseline:6.1%}")


if __name__ == "__main__":
    main()

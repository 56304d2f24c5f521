"""The quickstart's spread over seeds, as the README states it: `python -m alexnet_tf.train` with no arguments, three
seeds from one empty cache. Prints each seed's time, longest log silence and final ten-crop top-1 error, and whether
each is inside the README's range (exit status 1 if not). Three full quickstarts take 5-15 minutes on 2 cores, too
long for the test suite, which runs a shortened quickstart for the log-silence check (tests/test_quickstart.py).

    python benchmarks/quickstart_seeds.py [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from test_quickstart import FINAL, readme_range, run_logged  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0 runs with no arguments at all)")
    args = parser.parse_args()
    low, high = readme_range()
    inside = True
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ALEXNET_TF_VERBOSE")}
        env.update(ALEXNET_TF_CACHE=str(Path(tmp) / "cache"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
        for seed in (int(s) for s in args.seeds.split(",")):
            work = Path(tmp) / f"seed{seed}"
            work.mkdir()
            extra = ["--set", f"runtime.seed={seed}"] if seed else []
            start = time.monotonic()
            log, silence = run_logged([sys.executable, "-m", "alexnet_tf.train", *extra], work, env)
            error = float(FINAL.findall(log)[-1])
            ok = low <= error <= high
            inside &= ok
            print(f"seed {seed}: {time.monotonic() - start:.0f} s, longest silence {silence:.1f} s, "
                  f"ten-crop top-1 err {error:.1f} % ({'inside' if ok else 'OUTSIDE'} the README's {low}-{high} %)")
    return 0 if inside else 1


if __name__ == "__main__":
    sys.exit(main())

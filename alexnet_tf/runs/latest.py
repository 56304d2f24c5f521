"""New runs without a name: runs/<UTC timestamp>/ in the current folder, the newest also reachable as runs/latest."""

from __future__ import annotations

import os
import sys
import time

from alexnet_tf.core.files import temp_name

RUNS = "runs"
LATEST = os.path.join(RUNS, "latest")


def new_run_dir(parent: str = RUNS) -> str:
    """Creates parent/<UTC timestamp>/ (with a suffix when that exists) and points parent/latest at it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(1, 1000):
        path = os.path.join(parent, stamp if n == 1 else f"{stamp}-{n}")
        try:
            os.makedirs(path)
            break
        except FileExistsError:
            continue
    latest = os.path.join(parent, "latest")
    link = temp_name(latest)
    try:  # a relative link, replaced in one step: runs/ can be moved, and runs/latest is never missing
        os.symlink(os.path.basename(path), link)
        os.replace(link, latest)
    except OSError as e:  # e.g. runs/latest is a real folder: the run itself does not need the link
        print(f"warning: could not point {latest} at {path} ({e})", file=sys.stderr)
        if os.path.islink(link):
            os.remove(link)
    return path

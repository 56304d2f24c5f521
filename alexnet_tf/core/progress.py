"""Progress bars: the one way every command makes them (tqdm), and the one rule for when they are shown.

A bar is drawn only when it was asked for (no --no-progress) and both stdout and stderr are terminals: a log file
that a command's output is redirected to gets the one-line summaries, never thousands of carriage-return updates.
"""

from __future__ import annotations

import sys
from typing import Any


def interactive() -> bool:
    """True when stdout and stderr are both terminals (so a redrawn bar shows as one line, not as a log of them)."""
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "img", initial: int = 0,
                 leave: bool = True) -> Any:
    """A tqdm bar over `total` items; it draws nothing when not `enabled` or when the output is not a terminal.

    The object always has tqdm's `update`, `set_postfix`, `set_postfix_str` and `close`.
    """
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, dynamic_ncols=True,
                disable=not (enabled and interactive()))


def write(line: str) -> None:
    """Prints a line without breaking a progress bar that is being drawn."""
    from tqdm import tqdm
    tqdm.write(line)

"""Progress bars: the one way every command makes them (tqdm), and the one rule for when they are shown.

A bar is drawn only when it was asked for (no --no-progress) and both stdout and stderr are terminals: a log file
that a command's output is redirected to gets the one-line summaries, never thousands of carriage-return updates.
In a log, a bar that was asked for becomes plain lines on stderr instead (stdout may carry a command's JSON): one
when the phase starts, one whenever the log has been silent for LOG_EVERY_SECONDS while it runs and one when it
ends, so that a redirected log never falls silent.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from typing import Any, Iterator

from tqdm import tqdm

from alexnet_tf.errors import Preempted

LOG_EVERY_SECONDS = 8.0
_CHECK_SECONDS = 0.5  # how often the background threads look at the time since the last line
# The time of the last line written through this module, and the bars and phases running now (innermost last):
# only the innermost one speaks when the log has been silent for LOG_EVERY_SECONDS.
_last_line = [time.perf_counter()]
_active: list["LogLines"] = []


def interactive() -> bool:
    """True when stdout and stderr are both terminals (so a redrawn bar shows as one line, not as a log of them)."""
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "img", initial: int = 0,
                 leave: bool = True) -> Any:
    """A tqdm bar over `total` items; it draws nothing when not `enabled` or when the output is not a terminal.

    The object always has tqdm's `update`, `set_postfix`, `set_postfix_str` and `close`. When the output is not a
    terminal but the bar was asked for, it prints `LogLines` instead.
    """
    if enabled and not interactive():
        return LogLines(total, desc, unit, initial, ends=leave)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, dynamic_ncols=True,
                disable=not (enabled and interactive()))


def write(line: str) -> None:
    """Prints a line without breaking a progress bar that is being drawn."""
    tqdm.write(line)
    sys.stdout.flush()
    _last_line[0] = time.perf_counter()


class LogLines:
    """A progress bar for a log file: a line at the start, one whenever the log has been silent for
    LOG_EVERY_SECONDS while it runs (from a background thread, so also while one item takes long), one at the end.
    Of bars and phases running inside one another, only the innermost writes the periodic lines.

    `ends=False` (a bar that tqdm would not leave behind, as an epoch's, followed by its own summary line) prints
    only the periodic lines.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "img", initial: int = 0, ends: bool = True) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.postfix = ""
        self.start = time.perf_counter()
        self.ends = ends
        self._stream = _own_stderr()
        if ends:
            self._line(f"{desc}: started" + (f", {total} {unit}" if total else ""))
        self._stop = threading.Event()
        _active.append(self)
        self._beat = threading.Thread(target=self._every_interval, name=f"log lines: {desc}", daemon=True)
        self._beat.start()

    def _counts(self) -> str:
        if self.total:
            return f"{self.n}/{self.total} {self.unit}, "
        return f"{self.n} {self.unit}, " if self.n else ""

    def _every_interval(self) -> None:
        while not self._stop.wait(_CHECK_SECONDS):
            if _active[-1:] != [self] or time.perf_counter() - _last_line[0] < LOG_EVERY_SECONDS:
                continue
            self._line(f"{self.desc}: {self._counts()}{time.perf_counter() - self.start:.0f} s"
                     + (f" ({self.postfix})" if self.postfix else ""))

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self, outcome: str | None = None) -> None:
        """Ends the bar with its last line: "done", or "failed" / "stopped" (`ending`) when it is closed while an
        exception propagates (from a `finally:`), with the count reached."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._beat.join()
        if self in _active:
            _active.remove(self)
        if self.ends:
            self._line(f"{self.desc}: {outcome or ending()}, {self._counts()}{time.perf_counter() - self.start:.1f} s")
        if self._stream:
            self._stream.close()

    def _line(self, line: str) -> None:
        print(line, file=self._stream or sys.stderr, flush=True)
        _last_line[0] = time.perf_counter()


def ending(error: BaseException | None = None) -> str:
    """How a phase ended, for its last line: "done"; "stopped" for Ctrl-C, a signal's preemption or an exit;
    "failed" for any other error. Without `error`, the exception propagating now (a `finally:` block's) counts."""
    error = error if error is not None else sys.exc_info()[1]
    if error is None:
        return "done"
    return "stopped" if isinstance(error, (KeyboardInterrupt, SystemExit, Preempted)) else "failed"


def _own_stderr() -> Any:
    """A copy of stderr's file descriptor, so that the lines still show while TensorFlow's import points fd 2 at
    /dev/null (`tensorflow_setup.quiet_tensorflow`); None when stderr has no descriptor (then sys.stderr is used)."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def phase(desc: str, enabled: bool = True) -> Iterator[None]:
    """A phase without its own bar: "desc: started", a line every LOG_EVERY_SECONDS while it runs and "desc: done,
    N s" (or "failed" / "stopped", see `ending`) on stderr, on a terminal too (nothing when not `enabled`)."""
    lines = LogLines(None, desc) if enabled else None
    try:
        yield
    finally:
        if lines:
            lines.close()

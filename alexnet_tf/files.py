"""Atomic file writes: a temporary name in the same folder, fsync, then os.replace onto the final name."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from typing import Iterator


def temp_name(path: str | os.PathLike) -> str:
    """A temporary name beside `path` (matched by .gitignore's `*.tmp-*`), unique to this process."""
    return f"{os.fspath(path)}.tmp-{os.getpid()}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path to write; on success it is renamed onto `path`, on error it is removed."""
    tmp = temp_name(path)
    try:
        yield tmp
        if os.path.isfile(tmp):
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def remove_stale_temporaries(directory: str) -> None:
    """Removes temporary files and folders (`*.tmp-<pid>`, hidden ones too) in `directory` left by processes that
    are gone."""
    found = glob.glob(os.path.join(directory, "*.tmp-*")) + glob.glob(os.path.join(directory, ".*.tmp-*"))
    for path in found:
        pid = path.rsplit(".tmp-", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # still running: another process owns it
        except ProcessLookupError:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        except PermissionError:
            pass

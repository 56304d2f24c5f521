"""Files: atomic writes (a temporary name in the same folder, fsync, then os.replace onto the final name), fsync of
whole trees, and the image files a user names (paths, folders, glob patterns)."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import sys
from typing import Callable, Iterator, Sequence

from alexnet_tf.errors import AlexNetError, InputError


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
            fsync_path(tmp)
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


def fsync_path(path: str) -> None:
    """Flushes a file or a folder (its entries: a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """Flushes every file and folder under `root` to disk, so that a rename never publishes half-written data."""
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(folder, name))
        fsync_path(folder)


# ---------------------------------------------------------------------------------------------------------------------
# Writes that fail: a full disk or a folder that cannot be written, told apart from other errors.

NO_SPACE = "no space left on the disk"
NOT_WRITABLE = "cannot be written (read-only or without write permission)"
_NOT_WRITABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_problem(error: BaseException) -> str | None:
    """NO_SPACE or NOT_WRITABLE when `error` (an OSError, or TensorFlow's error from its own file system, told by
    its words) is one of those; None for anything else."""
    code = getattr(error, "errno", None)
    text = str(getattr(error, "message", None) or error)
    if code == errno.ENOSPC or "No space left" in text or type(error).__name__ == "ResourceExhaustedError" and \
            "space" in text:
        return NO_SPACE
    if code in _NOT_WRITABLE_ERRNOS or type(error).__name__ == "PermissionDeniedError" or \
            "Read-only file system" in text or "Permission denied" in text:
        return NOT_WRITABLE
    return None


@contextlib.contextmanager
def disk_errors(describe: Callable[[str, BaseException], Exception]) -> Iterator[None]:
    """Inside the block, a full disk or a folder that cannot be written (`write_problem`) is raised as
    `describe(problem, error)`: the caller's error, naming its files and the fix. alexnet_tf's own errors and any
    other failure pass through unchanged."""
    try:
        yield
    except AlexNetError:
        raise
    except Exception as e:
        problem = write_problem(e)
        if problem is None:
            raise
        raise describe(problem, e) from None


def size_text(size: float) -> str:
    """A size in bytes as people read it: "512 B", "376 KiB", "16.4 KiB", "1.6 MiB", "2.3 GiB"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if size < 100 * scale else f"{size / scale:.0f} {unit}"
    return f"{size:.0f} B"


def tree_size(path: str) -> int:
    """The bytes of a file, or of every file under a folder."""
    if not os.path.isdir(path):
        return os.path.getsize(path) if os.path.exists(path) else 0
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names)


def free_bytes(path: str) -> int:
    """The free space of the disk holding `path` (or its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


# ---------------------------------------------------------------------------------------------------------------------
# Image files that a user names.

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def expand_images(arguments: Sequence[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """Turns IMAGE arguments into image files.

    Args:
        arguments: Files, folders (their image files with extensions `IMAGE_EXTENSIONS`, recursively, sorted) or
            glob patterns (`**` allowed).

    Returns:
        (paths, errors): the files in argument order without repeats, and one message per argument that names
        nothing.
    """
    paths: list[str] = []
    seen: set[str] = set()  # a list lookup per file would be quadratic: minutes for a folder of 100,000 images
    errors: list[str] = []
    for arg in map(os.fspath, arguments):
        if os.path.isdir(arg):
            found = sorted(os.path.join(folder, name) for folder, _, names in os.walk(arg) for name in names
                           if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
            if not found:
                errors.append(f"{arg}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        elif os.path.exists(arg):
            found = [arg]
        elif glob.has_magic(arg):
            found = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not found:
                errors.append(f"{arg}: no file matches this pattern")
        else:
            found = []
            errors.append(f"{arg}: no such file or folder")
        for p in found:
            if p not in seen:
                seen.add(p)
                paths.append(p)
    return paths, errors


def expand_image_arguments(arguments: Sequence[str], what: str) -> tuple[list[str], list[str]]:
    """`expand_images` for a command line: prints each argument that names nothing, as an error line.

    Raises:
        InputError: when no image is left to work on (`what` names the option, e.g. "IMAGE" or "--query").
    """
    paths, errors = expand_images(arguments)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    if not paths:
        raise InputError(f"no image found; give {what} as image files, folders or glob patterns")
    return paths, errors


def read_bytes(path: str | os.PathLike) -> bytes:
    """The contents of a file."""
    with open(path, "rb") as f:
        return f.read()


def read_images(paths: Sequence[str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """(contents by path, error by path) for files that cannot be read."""
    contents, errors = {}, {}
    for path in paths:
        try:
            contents[path] = read_bytes(path)
        except OSError as e:
            errors[path] = f"cannot read the file ({e.strerror or e})"
    return contents, errors

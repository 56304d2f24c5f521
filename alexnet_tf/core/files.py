"""Files: atomic writes (a temporary name in the same folder, fsync, then os.replace onto the final name), fsync of
whole trees, and the image files a user names (paths, folders, glob patterns)."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import sys
import tempfile
from typing import Callable, Iterator, Sequence

from alexnet_tf.errors import AlexNetError, InputError, OutputError


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
# Writes that fail: what happened, told apart by its errno (or, for TensorFlow's own file system, by its words).

NO_SPACE = "no space left on the disk"
NOT_WRITABLE = "cannot be written (read-only or without write permission)"
# The faults a write can meet, each with its fix: the codes that `write_fault` returns.
WRITE_FAULTS = (errno.ENOENT, errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EISDIR, errno.ENOTDIR)
_SAME_AS = {errno.EPERM: errno.EACCES, errno.EDQUOT: errno.ENOSPC, errno.EFBIG: errno.ENOSPC}
_WORDS = (("No space left", errno.ENOSPC), ("Read-only file system", errno.EROFS),
          ("Permission denied", errno.EACCES), ("Is a directory", errno.EISDIR), ("Not a directory", errno.ENOTDIR))
_TENSORFLOW_ERRORS = {"ResourceExhaustedError": errno.ENOSPC, "PermissionDeniedError": errno.EACCES,
                      "NotFoundError": errno.ENOENT}


def write_fault(error: BaseException) -> int | None:
    """The errno of a failed write, one of WRITE_FAULTS (EPERM counts as EACCES, EDQUOT and EFBIG as ENOSPC), from an
    OSError or from TensorFlow's error of its own file system (by its class and words); None for anything else."""
    code = getattr(error, "errno", None)
    code = _SAME_AS.get(code, code)
    if code in WRITE_FAULTS:
        return code
    text = str(getattr(error, "message", None) or error)
    for words, by_words in _WORDS:
        if words in text:
            return by_words
    by_class = _TENSORFLOW_ERRORS.get(type(error).__name__)
    if by_class == errno.ENOSPC and "space" not in text:  # an out-of-memory error is not a full disk
        return None
    return by_class


def write_problem(error: BaseException) -> str | None:
    """NO_SPACE or NOT_WRITABLE when `error` (see `write_fault`) is one of those; None for anything else."""
    code = write_fault(error)
    return NO_SPACE if code == errno.ENOSPC else NOT_WRITABLE if code in (errno.EACCES, errno.EROFS) else None


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
    """A size in bytes as people read it: "512 B", "376 KiB", "16.4 KiB", "1.6 MiB", "2.3 GiB"; never a 0 that
    hides a size ("< 1 B" for a fraction of a byte)."""
    if 0 < size < 1:
        return "< 1 B"
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
# Outputs a user names (--out, --json, --figure, --run-dir, ...): checked before the work starts, written atomically,
# each write fault an OutputError (exit 2) naming the path, what happened and what to do. Missing folders above the
# output are created; nothing half-written is left behind.

FILE, FOLDER = "file", "folder"


def _nearest_existing(path: str) -> str:
    """`path` itself or its nearest ancestor that exists."""
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _fault_text(code: int, path: str, kind: str) -> str:
    """What happened and what to do, for `write_fault`'s code on the output `path`."""
    base = _nearest_existing(path if kind == FOLDER else os.path.dirname(path))
    if code == errno.ENOTDIR or (code == errno.ENOENT and os.path.lexists(base) and not os.path.isdir(base)):
        return f"{base} is a file, not a folder; give a path whose folders are folders, or move that file away"
    if code == errno.ENOENT and os.path.isdir(os.path.dirname(path)):  # /proc, sysfs: the folder takes no new file
        return f"its folder {os.path.dirname(path)} exists but takes no new files (a special file system such as " \
               "/proc); give a path on an ordinary disk"
    if code == errno.ENOENT:
        return f"its folder {os.path.dirname(path)} does not exist and could not be created; create it or give " \
               "another path"
    if code == errno.EISDIR:
        return ("is a folder, but a file is wanted here; give a file name (e.g. inside that folder), or remove "
                "the folder")
    if code == errno.EROFS:
        return f"{base} is on a read-only file system; give a path on a writable disk"
    if code == errno.EACCES:
        return f"permission denied to write in {base}; give a folder you can write, or make it writable"
    return f"no space left on the disk ({size_text(free_bytes(base))} free); free some space or give a path on " \
           "another disk"


def output_error(path: str | os.PathLike, error: BaseException, kind: str = FILE,
                 option: str | None = None) -> OutputError | None:
    """The OutputError for a failed write of the output `path` (a FILE or a FOLDER, named by `option`, e.g. "--out"),
    or None when `error` is no write fault (`write_fault`) of this output: a missing, unreadable or odd file that
    lies outside it (an input) is not one."""
    code = write_fault(error)
    where = getattr(error, "filename", None)
    path = os.path.abspath(os.fspath(path))
    if code is None:
        return None
    if code in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR) and (
            where is None or not _inside(os.path.abspath(os.fspath(where)), path)):
        return None
    label = f"{option} {path}" if option else path
    return OutputError(f"{label}: {_fault_text(code, path, kind)}; nothing was written")


def _inside(path: str, output: str) -> bool:
    """True for the output itself, anything under it, its temporary names and the folders above it."""
    return path == output or path.startswith(output + os.sep) or path.startswith(output + ".tmp-") or \
        output.startswith(path + os.sep) or os.path.dirname(path) == os.path.dirname(output)


def check_output(path: str | os.PathLike, kind: str = FILE, option: str | None = None) -> str:
    """Checks, before any work and without creating anything, that the output `path` can be written: a FILE is not
    a folder, a FOLDER is not a file, the nearest existing folder above it is a folder and can be written (a file
    is created and removed in it). Returns the absolute path.

    Raises:
        OutputError: naming the path, what is wrong and what to do.
    """
    path = os.path.abspath(os.fspath(path))
    label = f"{option} {path}" if option else path
    if kind == FILE and os.path.isdir(path):
        raise OutputError(f"{label}: {_fault_text(errno.EISDIR, path, kind)}; nothing was written")
    if kind == FOLDER and os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{label}: is a file, but a folder is wanted here; give another path, or move the file "
                          "away; nothing was written")
    base = _nearest_existing(path if kind == FOLDER else os.path.dirname(path))
    try:
        if not os.path.isdir(base):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", suffix=f".tmp-{os.getpid()}", dir=base)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise output_error(path, e, kind, option) or OutputError(
            f"{label}: cannot write in {base} ({e.strerror or e}); give another path") from None
    return path


@contextlib.contextmanager
def output_errors(path: str | os.PathLike, kind: str = FILE, option: str | None = None) -> Iterator[None]:
    """Inside the block, a write fault of the output `path` (`output_error`) becomes its OutputError (exit 2);
    alexnet_tf's own errors and other failures pass through unchanged."""
    try:
        yield
    except AlexNetError:
        raise
    except Exception as e:
        mapped = output_error(path, e, kind, option)
        if mapped is None:
            raise
        raise mapped from None


@contextlib.contextmanager
def output_file(path: str | os.PathLike, option: str | None = None) -> Iterator[str]:
    """Writes the user-named file `path`: checked (`check_output`), its missing folders created, then a temporary
    name beside it is yielded to write; on success it is synced and renamed onto `path`, on any error removed. A
    write fault becomes an OutputError (exit 2) naming the path."""
    path = check_output(path, FILE, option)
    with output_errors(path, FILE, option):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path) as tmp:
            yield tmp


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, option: str | None = None) -> Iterator[str]:
    """Writes the user-named folder `path` whole: checked (`check_output`), a temporary folder beside it yielded
    to fill; on success its files are synced and it is renamed to `path` (which must not exist or be empty), on
    any error removed. A write fault becomes an OutputError (exit 2) naming the path."""
    path = check_output(path, FOLDER, option)
    if os.path.isdir(path) and os.listdir(path):
        raise OutputError(f"{f'{option} ' if option else ''}{path}: already holds files; give a new or empty folder; "
                          "nothing was written")
    with output_errors(path, FOLDER, option):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = temp_name(path)
        os.makedirs(tmp)
        try:
            yield tmp
            fsync_tree(tmp)
            if os.path.isdir(path):
                os.rmdir(path)  # an empty folder: a non-empty one raises, and is left as it was
            os.rename(tmp, path)
            fsync_path(os.path.dirname(path))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


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

"""Versioned, atomic, locked publishing of export folders, as tensorflow_model_server reads them.

A version is written into a hidden temporary folder and renamed into place as `OUT/<N>/` (a polling server never
sees a numbered folder without its saved_model.pb), under an OS lock on `OUT/.export.lock`: two exports into one
folder never take the same number, and an existing version is replaced only with force and an explicit version.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

from alexnet_tf.core.files import fsync_path
from alexnet_tf.core.locks import FileLock, LockHeld
from alexnet_tf.errors import ExportError

# Held while a version is chosen and published; tensorflow_model_server reads only numbered folders and ignores it.
LOCK_FILE = ".export.lock"
MODEL_FILE = "saved_model.pb"  # a version folder is complete when it holds this


def existing_versions(out_dir: str) -> list[int]:
    """The version numbers present in `out_dir` (all-digit folder names, as tensorflow_model_server reads them)."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(int(n) for n in os.listdir(out_dir) if n.isdigit() and os.path.isdir(os.path.join(out_dir, n)))


def latest_version(out_dir: str) -> str | None:
    """The highest complete version folder (one with its saved_model.pb) of an export base folder, or None."""
    complete = [v for v in existing_versions(out_dir) if os.path.isfile(os.path.join(out_dir, str(v), MODEL_FILE))]
    return os.path.join(out_dir, str(complete[-1])) if complete else None


def target_version(out_dir: str, version: int | None, force: bool) -> str:
    """The folder `out_dir/<version>` to write (default: the next number). Checked before any work is done, and
    again under the lock when publishing (another export may have published in between).

    Raises:
        ExportError: for a version < 1, or an existing version without `force`.
    """
    if version is None:
        version = (existing_versions(out_dir) or [0])[-1] + 1
    if version < 1:
        raise ExportError(f"--version must be a positive integer, got {version}")
    final = os.path.join(os.path.abspath(out_dir), str(version))
    if os.path.exists(final) and not force:
        raise ExportError(f"version {final!r} already exists; choose another --version, omit it for the next "
                          f"number, or pass --force to replace it")
    return final


@contextlib.contextmanager
def export_lock(out_dir: str) -> Iterator[None]:
    """Holds the OS lock on `out_dir/.export.lock` (a `locks.FileLock`) while a version is chosen and published,
    waiting while another export holds it: they hold it for a rename, so the wait is short. The kernel drops the
    lock of a process that dies, however it dies."""
    os.makedirs(out_dir, exist_ok=True)
    lock = None
    while lock is None:
        try:
            lock = FileLock.acquire(os.path.join(out_dir, LOCK_FILE))
        except LockHeld:
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def publish(saved: str, staging: str, out_dir: str, version: int | None, force: bool) -> str:
    """Renames the finished SavedModel `saved` to its version folder; call it with `export_lock` held. The number
    is chosen now, not when the export began: another export may have published meanwhile (it keeps its number).

    Args:
        saved: The finished folder, inside `staging`.
        staging: The export's temporary folder inside `out_dir`; a replaced version is moved aside into it.
    """
    final = target_version(out_dir, version, force)
    replaced = None
    if os.path.exists(final):  # --force with --version: move the old version aside (a folder cannot be renamed over)
        replaced = os.path.join(staging, "replaced")
        os.rename(final, replaced)
    try:
        os.rename(saved, final)
    except OSError as e:
        if replaced:
            os.rename(replaced, final)
        raise ExportError(f"could not publish {final!r} ({e}); check the folder's permissions and free space") from None
    fsync_path(out_dir)
    return final

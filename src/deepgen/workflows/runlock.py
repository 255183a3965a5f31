"""One writer per run directory: the lock file ``RUN/.lock``.

``run_lock(directory)`` (a context manager) takes the lock before anything in the
directory is written and releases it on exit, also on an exception or Ctrl-C.  The file
holds the owner's pid and host name.  Mutual exclusion comes from ``fcntl.flock`` on that
file, which the kernel drops when the owning process dies, so a lock left by a killed
process (SIGKILL, a crash, a power cut) is *stale*: the next process takes it over and warns
on stderr, naming the dead pid.  A second live process gets :class:`RunLocked`, one line
naming the directory, the owner's pid and host.  Where ``fcntl`` is missing the lock falls
back to an exclusive create plus a check that the recorded pid is alive.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
from pathlib import Path

from deepgen.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"


class RunLocked(CheckpointError):
    """Another live process is writing the run directory."""


def _owner_text() -> str:
    return f"pid {os.getpid()} host {socket.gethostname()}\n"


def _parse_owner(text: str) -> tuple[int | None, str | None]:
    """(pid, host) from a lock file's text ``pid N host NAME``; (None, None) if unreadable."""
    parts = text.split()
    try:
        i, j = parts.index("pid"), parts.index("host")
        return int(parts[i + 1]), parts[j + 1]
    except (ValueError, IndexError):
        return None, None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _warn(text: str) -> None:
    print(f"deepgen: warning: {text}", file=sys.stderr, flush=True)


class RunLock:
    """The held lock of one run directory; :meth:`release` gives it back (idempotent)."""

    def __init__(self, directory: Path, fd: int, path: Path):
        self.directory, self.fd, self.path = directory, fd, path
        self.pid = os.getpid()

    def release(self) -> None:
        if self.fd is None or os.getpid() != self.pid:  # a forked child never releases its parent's lock
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            # unlink while still holding the lock; a waiter that opened the old file notices the
            # inode changed (see acquire) and retries on the new one
            if _same_file(fd, self.path):
                self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(fd)
        atexit.unregister(self.release)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _held_error(directory: Path, text: str) -> RunLocked:
    pid, host = _parse_owner(text)
    who = f"process {pid} on host {host}" if pid is not None else "another process"
    return RunLocked(f"{directory}: in use by {who} (lock file {directory / LOCK_FILE}); wait for it to finish "
                     f"or write to another directory; if no such process is running, delete the lock file")


def acquire(directory, attempts: int = 20) -> RunLock:
    """Take the lock of run directory ``directory`` (which must exist) or raise :class:`RunLocked`."""
    directory = Path(directory)
    path = directory / LOCK_FILE
    for _ in range(attempts):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL), 0o644)
        except FileExistsError:  # no fcntl: an existing file is held unless its pid is dead
            text = _read(path)
            pid, host = _parse_owner(text)
            if pid is not None and host == socket.gethostname() and not _pid_alive(pid):
                _warn(f"{directory}: taking over the stale lock of process {pid} (no longer running)")
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            raise _held_error(directory, text) from None
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot create the run's lock file ({exc.strerror or exc})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                text = _read(path)
                os.close(fd)
                raise _held_error(directory, text) from None
            if not _same_file(fd, path):  # released (and unlinked) by its owner meanwhile: try the new file
                os.close(fd)
                continue
            previous = os.read(fd, 4096).decode("utf-8", "replace")
            pid, host = _parse_owner(previous)
            if pid is not None:
                state = ("no longer running" if host == socket.gethostname() and not _pid_alive(pid)
                         else "its lock was released by the system")
                _warn(f"{directory}: taking over the stale lock of process {pid} on host {host} ({state})")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, _owner_text().encode())
        lock = RunLock(directory, fd, path)
        atexit.register(lock.release)
        return lock
    raise RunLocked(f"{directory}: could not take the lock file {path} (it keeps changing); another process "
                    "is starting in this directory")


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""


@contextlib.contextmanager
def run_lock(directory):
    """Hold the lock of ``directory`` for the ``with`` block (released on any exit)."""
    lock = acquire(directory)
    try:
        yield lock
    finally:
        lock.release()

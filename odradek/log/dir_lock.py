"""The exclusive lock on a log dir: one broker per directory, as Kafka's `.lock` file.

Format: `<log dir>/.lock`, holding the pid of the broker that holds it (Kafka leaves it empty).
The lock is the operating system's, not the file's existence: it is released when the holder
closes it or dies (`kill -9` included), so a crash never leaves a directory locked.

On Linux it is an open-file-description lock (F_OFD_SETLK): it conflicts with the POSIX lock
Apache Kafka's JVM takes on the same file, and with a second lock taken in the same process (two
in-process brokers on one directory). Elsewhere it falls back to flock(2).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterable
from pathlib import Path

LOCK_FILE = ".lock"

# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (+ padding to 32 bytes)
_FLOCK = struct.Struct("hhqqi4x")


class LogDirError(Exception):
    """A log dir this broker must not use (locked by another broker, another cluster's or node's).

    The message is one line for the operator; the broker refuses to start with it."""


class LogDirLock:
    """An exclusive lock on one log dir, held from acquire() until release() or process exit."""

    def __init__(self, log_dir: Path, fd: int, *, created: bool) -> None:
        self.log_dir = log_dir
        self._fd: int | None = fd
        self._created = created

    @classmethod
    def acquire(cls, log_dir: Path) -> "LogDirLock":
        """Lock `log_dir` (created if missing), or raise LogDirError naming the holder."""
        log_dir = Path(log_dir)
        path = log_dir / LOCK_FILE
        created = True
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                created = False
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise LogDirError(f"cannot lock log dir {log_dir}: {exc.strerror or exc}") from None
        try:
            _lock(fd)
        except BlockingIOError:
            holder = _holder_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise LogDirError(
                f"log dir {log_dir} is locked by {who}: another broker is using it; "
                "stop that broker or point log.dirs elsewhere"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LogDirError(f"cannot lock log dir {log_dir}: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(log_dir, fd, created=created)

    def release(self, *, discard_created: bool = False) -> None:
        """Unlock (closing the file releases the lock). The `.lock` file stays, unless
        `discard_created` and this lock created it (a refused start leaves the dir as it was)."""
        if self._fd is None:
            return
        if discard_created and self._created:
            (self.log_dir / LOCK_FILE).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def acquire_all(log_dirs: Iterable[Path]) -> list[LogDirLock]:
    """Lock every dir or none: on a refusal, the locks already taken are released."""
    locks: list[LogDirLock] = []
    try:
        for log_dir in log_dirs:
            locks.append(LogDirLock.acquire(log_dir))
    except BaseException:
        release_all(locks, discard_created=True)
        raise
    return locks


def release_all(locks: Iterable[LogDirLock], *, discard_created: bool = False) -> None:
    for lock in locks:
        lock.release(discard_created=discard_created)


def _lock(fd: int) -> None:
    if hasattr(fcntl, "F_OFD_SETLK"):
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
            return
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise BlockingIOError(exc.errno, exc.strerror) from None
            if exc.errno != errno.EINVAL:  # EINVAL: a kernel or filesystem without OFD locks
                raise
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder_pid(fd: int) -> int | None:
    """The pid holding the lock: the kernel's answer for a POSIX lock (a JVM's), else the file's."""
    if hasattr(fcntl, "F_OFD_GETLK"):
        try:
            answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
            pid = _FLOCK.unpack(answer)[4]
            if pid > 0:
                return pid
        except OSError:
            pass
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

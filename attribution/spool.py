"""The redirect's click spool: a local file per web process, shipped to the click buffer in batches.

Making a click durable in Redis costs the redirect a network round trip, most of its own CPU and
as much again in Redis. Instead the redirect appends the click, one JSON line, to its process's
spool file: one write(2) into the operating system's page cache, which outlives the process (a
worker killed or out of memory loses nothing; only the machine failing within the moment before
the next shipment would). A thread of the same process ships what has been written every
CLICK_SPOOL_INTERVAL seconds in one Redis transaction, then deletes the file; when Redis does not
answer it hands the batch to the database instead.

Files are `<CLICK_SPOOL_DIR>/<host>-<pid>-<n>.clicks`. The process writing or shipping a file holds
an exclusive lock on it (flock), which the kernel drops when the process dies; a file nobody holds
belongs to a process that died, and any shipper of the same directory adopts it.
"""

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.db import close_old_connections

logger = logging.getLogger(__name__)

SUFFIX = ".clicks"
_CREATING = ".new"  # a file not yet locked by its creator: never adopted
_ADOPT_EVERY = 5.0  # seconds between two looks for the files of processes that died
_STALE_CREATING = 60.0  # a file left unlocked in creation this long was its creator's last act


def _open_locked(directory: Path, name: str) -> tuple[Path, int]:
    """A new, empty spool file that this process holds locked (created under another name first,
    so that no shipper can adopt it between its creation and its lock)."""
    path = directory / name
    creating = path.with_suffix(_CREATING)
    fd = os.open(creating, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(creating, path)
    return path, fd


def _complete_lines(fd: int) -> list[bytes]:
    """The whole lines of a spool file (a process killed in mid-write can leave a partial last one)."""
    data = b""
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        data += chunk
        offset += len(chunk)
    lines = data.split(b"\n")
    if lines[-1]:
        logger.error("dropping a partial spooled click: %r", lines[-1][:200])
    return [line for line in lines[:-1] if line]


class ClickSpool:
    """One per web process. `append()` is the redirect's; `ship()` runs on the spool's thread."""

    def __init__(self, directory: str | Path, *, deliver: Callable[[list[bytes]], None], interval: float):
        self.directory = Path(directory)
        self.deliver = deliver
        self.interval = interval
        self._pid = None

    # --- the redirect's side ---------------------------------------------------------------

    def append(self, line: str) -> None:
        if self._pid != os.getpid():
            self._start()  # first click of this process (or of a process forked with a spool)
        data = line.encode() + b"\n"
        with self._lock:
            written = os.write(self._fd, data)
            self._pending += 1
        if written != len(data):  # a full disk: let the caller store this click another way
            raise OSError(f"spool write of {written} of {len(data)} bytes")

    def _start(self) -> None:
        if self._pid is not None:
            # Forked from a process that had a spool: its files are its own to ship. (A lock is
            # shared by every descriptor of a file, so keeping them open would keep them locked.)
            for _, fd in [(self._path, self._fd), *self._shipping]:
                os.close(fd)
            self._pid = None
        self._lock = threading.Lock()
        self._ship_lock = threading.Lock()
        self._sequence = 0
        self._shipping: list[tuple[Path, int]] = []
        self._adopted_at = 0.0
        self._stop = threading.Event()
        self.directory.mkdir(parents=True, exist_ok=True)  # OSError: the caller stores the click otherwise
        self._path, self._fd = self._new_file()
        self._pending = 0
        self._pid = os.getpid()  # started: only now, so that a failed start is tried again
        self._thread = threading.Thread(target=self._run, name="click-spool", daemon=True)
        self._thread.start()

    def _new_file(self) -> tuple[Path, int]:
        self._sequence += 1
        return _open_locked(self.directory, f"{socket.gethostname()}-{os.getpid()}-{self._sequence}{SUFFIX}")

    # --- the shipper's side ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.ship()
            except Exception:  # never let the thread die: the next round tries again
                logger.exception("click spool: shipment failed; the clicks stay spooled")
            finally:
                close_old_connections()  # this thread's database connection, if a broken or old one

    def ship(self) -> int:
        """Ship what this process has spooled (and the files of dead processes now and then);
        returns how many clicks were delivered. A file is deleted only after its delivery."""
        if self._pid != os.getpid():
            return 0
        with self._ship_lock:
            return self._ship()

    def _ship(self) -> int:
        with self._lock:
            if self._pending:
                self._shipping.append((self._path, self._fd))
                self._path, self._fd = self._new_file()
                self._pending = 0
        if time.monotonic() - self._adopted_at >= _ADOPT_EVERY:
            self._adopted_at = time.monotonic()
            self._shipping.extend(self._orphans())
        delivered = 0
        while self._shipping:
            path, fd = self._shipping[0]
            lines = _complete_lines(fd)
            if lines:
                self.deliver(lines)  # raises when it cannot: the file stays, for the next round
            os.unlink(path)
            os.close(fd)
            self._shipping.pop(0)
            delivered += len(lines)
        return delivered

    def _orphans(self) -> list[tuple[Path, int]]:
        """The spool files of processes that died: the ones nobody holds a lock on."""
        held = {path for path, _ in self._shipping} | {self._path}
        found = []
        for path in self.directory.glob(f"*{_CREATING}"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > _STALE_CREATING:
                    path.unlink()
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path in held:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # shipped meanwhile by its owner or another adopter
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process is alive and will ship it
                os.close(fd)
                continue
            if not path.exists():  # shipped and deleted between our open and our lock
                os.close(fd)
                continue
            logger.info("click spool: adopting %s", path.name)
            found.append((path, fd))
        return found

    def close(self) -> None:
        """Stop the thread and ship what is left (a worker exiting)."""
        if self._pid != os.getpid():
            return
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.ship()
        except Exception:  # the files stay, locked until this process exits; then they are adopted
            logger.exception("click spool: last shipment failed")
            return
        if self._pending == 0 and not self._shipping:
            os.unlink(self._path)
            os.close(self._fd)
            self._pid = None

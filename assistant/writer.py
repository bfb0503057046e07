"""One writer at a time: the lock `papers ingest` holds while it writes a store.

Why: two ingests writing one embedded store at once left it damaged with every run exiting 0
(measured: 23 of 605 papers lost their vectors, or the second run's collection create failed
with a traceback). Chroma's embedded client keeps its vector index per process, so two writers
overwrite each other's; SQLite's own locking does not cover that. Readers (search, chat) take no
lock: they keep reading while a writer writes.

- Embedded store: `writer.lock` inside the store folder, held with flock(2). The kernel releases
  it when the holder exits, however it exits (SIGKILL included), so a lock is never stale; the
  file names the holder (pid, host, start time) for the message a second writer shows, and a
  name left behind by a holder that died is reported when the lock is taken over.
- Chroma server (`PAPERS_CHROMA_URL`): writers on other machines cannot see our flock, so the
  lock is a lease record in a small collection on the server (store.WriterLeases): created only
  if absent (Chroma's `add` keeps an existing id), renewed every third of its lease by a thread,
  and taken over when its holder let it expire (a crashed writer stops renewing).

A second writer waits up to `writer_wait` seconds (PAPERS_WRITER_WAIT), saying once whom it
waits for, then gives up with one line naming the holder (StoreLockedError).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .config import Settings
from .errors import StoreLockedError

LOCK_NAME = "writer.lock"
POLL_S = 0.5  # how often a waiting writer tries again
Notice = Callable[[str], None]


def holder_record(command: str = "papers ingest") -> dict:
    """Who we are, as a second writer will read it."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"), "token": uuid.uuid4().hex}


def describe(holder: dict | None) -> str:
    """"papers ingest (pid 4242 on host-a, since 2026-11-30 10:00:03)"."""
    if not holder:
        return "another writer"
    return (f"{holder.get('command', 'a writer')} (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, since {holder.get('since', '?')})")


class WriterLock:
    """`with WriterLock(settings, notice):` holds the store's writer lock (see module docstring)."""

    def __init__(self, settings: Settings, notice: Notice | None = None) -> None:
        self.settings = settings
        self.notice = notice or (lambda line: None)
        self.me = holder_record()
        self._impl = _LeaseLock(settings, self.me) if settings.chroma_url else _FileLock(settings, self.me)

    def __enter__(self) -> "WriterLock":
        deadline = time.monotonic() + self.settings.writer_wait
        told = False
        while True:
            holder = self._impl.try_acquire()
            if holder is None:
                if self._impl.stale:
                    self.notice(f"took over the writer lock of {self.where}: "
                                f"{describe(self._impl.stale)} did not release it ({self._impl.stale_why})")
                return self
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"{describe(holder)} is writing to {self.where}: wait for it to finish and retry, "
                    f"or let `papers ingest` wait longer (PAPERS_WRITER_WAIT={self.settings.writer_wait:g} s)")
            if not told:
                self.notice(f"waiting for {describe(holder)} to finish writing to {self.where} "
                            f"(at most {self.settings.writer_wait:g} s: PAPERS_WRITER_WAIT)...")
                told = True
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.01)))

    def __exit__(self, *exc) -> None:
        self._impl.release()

    def check(self) -> None:
        """Raise StoreLockedError if the lock was lost (a server lease taken over meanwhile)."""
        self._impl.check()

    @property
    def where(self) -> str:
        return self.settings.chroma_url or str(self.settings.store_dir)


class _FileLock:
    """flock(2) on `<store>/writer.lock`; the file's text names the holder."""

    def __init__(self, settings: Settings, me: dict) -> None:
        self.path = Path(settings.store_dir) / LOCK_NAME
        self.me = me
        self.stale: dict | None = None
        self.stale_why = "it is no longer running"
        self._fh = None

    def try_acquire(self) -> dict | None:
        import fcntl

        from .store import translated

        with translated(str(self.path.parent)):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fh)
            fh.close()
            return holder or {"command": "another writer"}
        self.stale = _read_holder(fh)  # a name left by a holder that died without releasing
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(self.me))
        fh.flush()
        self._fh = fh
        return None

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        fh.seek(0)
        fh.truncate()  # released cleanly: nothing to report as stale next time
        fh.close()  # closing drops the flock

    def check(self) -> None:
        return None  # the kernel never takes a flock away from a living holder


_HELD: set[str] = set()  # tokens of the leases this process holds now


def _stale(holder: dict, now: float) -> str | None:
    """Why a lease no longer holds: expired, or its writer (on this host) is gone."""
    if float(holder.get("expires", 0)) <= now:
        return "its lease expired"
    if holder.get("host") != socket.gethostname():
        return None  # another machine's writer: only its lease says whether it lives
    pid = int(holder.get("pid", 0) or 0)
    if pid == os.getpid():
        return None if holder.get("token") in _HELD else "this process no longer holds it"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "it is no longer running"
    except PermissionError:  # alive, another user's
        return None
    return None


def _read_holder(fh) -> dict | None:
    fh.seek(0)
    try:
        holder = json.loads(fh.read() or "null")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


class _LeaseLock:
    """A lease record on the Chroma server, renewed by a thread (see the module docstring)."""

    def __init__(self, settings: Settings, me: dict) -> None:
        from .store import WriterLeases

        self.leases = WriterLeases(settings)
        self.me = me
        self.lease_s = settings.writer_lease
        self.stale: dict | None = None
        self.stale_why = ""
        self._lost: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_acquire(self) -> dict | None:
        now = time.time()
        holder = self.leases.current()
        why = holder is not None and _stale(holder, now)
        if why:
            self.leases.remove(holder["token"])  # its writer crashed, hung or was cut off
            self.stale, self.stale_why, holder = holder, why, None
        if holder is None:
            holder = self.leases.claim({**self.me, "expires": now + self.lease_s})
        if holder.get("token") != self.me["token"]:
            return holder
        _HELD.add(self.me["token"])
        self._thread = threading.Thread(target=self._renew, daemon=True, name="writer-lease")
        self._thread.start()
        return None

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                holder = self.leases.renew(self.me["token"], time.time() + self.lease_s)
            except Exception:  # the server is briefly away: the next renewal may succeed
                continue
            if holder is not None:
                self._lost = holder
                return

    def check(self) -> None:
        if self._lost is not None:
            raise StoreLockedError(
                f"lost the writer lock of {self.leases.where}: {describe(self._lost)} took it over "
                f"(our lease of {self.lease_s:g} s expired); run `papers ingest` again")

    def release(self) -> None:
        self._stop.set()
        _HELD.discard(self.me["token"])
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            try:
                self.leases.remove(self.me["token"])
            except Exception:  # the server went away: the lease expires by itself
                pass

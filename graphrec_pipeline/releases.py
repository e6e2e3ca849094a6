"""Releases: every run writes into its own folder; one pointer says which is live.

Layout of a data directory (a local folder or an ``s3://`` prefix)::

    CURRENT.json              {"release": "<id>"}: the live release (replaced atomically)
    graphrec.duckdb           views over the live release's tables (rebuilt at each switch)
    .lock                     the run that may write: run id, pid, host, start time
    releases/<id>/            everything one run made: staging/, <table>.parquet, graph/,
                              model/, serving/, indexes/, eval_metrics/, RELEASE.json

A run's release starts as a copy of the live release (hard links on disk, server-side
copies on an object store; every write replaces a whole file, so the copy never changes
the live one's bytes), then the run overwrites what it makes. ``RELEASE.json`` (the file
digests, the run, the headline metrics) is written last, and only then does the pointer
move: a reader that resolved the pointer reads one complete release until it resolves
again, and a crash anywhere leaves the previous one live. Release ids are the Dagster run
ids, so pruning touches nothing it did not create. The lock is a file created
exclusively (a hard link on disk, a conditional PUT on an object store).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from graphrec_pipeline.storage import DUCKDB_FILE, STAGING, Storage, UnreadableFile
from graphrec_pipeline.storage.location import SEEDED, Location, local_root, location
from graphrec_pipeline.storage.warehouse import build_duckdb, connect

POINTER = "CURRENT.json"
RELEASES = "releases"
MANIFEST = "RELEASE.json"
REFUSED = "refused"  # refused/<run id>.json: a run the release gate kept from going live, and why
LOCK = ".lock"
DUCKDB_NEXT = DUCKDB_FILE + ".next"  # the next release's database, built before the pointer moves
RELEASE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")  # \Z: no trailing newline
DEBRIS = re.compile(r"^\..+\.tmp(\.wal)?$")
DEBRIS_AGE_SECONDS = 600.0
_HEARTBEATS: set[tuple[str, str]] = set()


class ReleaseError(RuntimeError):
    """A release is missing, incomplete, corrupt or inconsistent; the message says which file."""


class LockHeld(RuntimeError):
    """Another live run holds the data directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _counted(rel: str) -> bool:
    """Whether a file belongs in a release's digests (not the manifest, staging or debris)."""
    name = rel.rsplit("/", 1)[-1]
    return rel != MANIFEST and not rel.startswith(f"{STAGING}/") and not DEBRIS.match(name) and name != SEEDED


def file_digests(root: Location) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative POSIX paths), except the manifest."""
    return {rel: root.sha256(rel) for rel in root.files() if _counted(rel)}


def verify_files(root: Location) -> dict:
    """The release manifest under ``root``, after checking that every file it lists lies
    inside ``root`` and has its recorded digest."""
    where = root.url(MANIFEST)
    try:
        manifest = json.loads(root.read_bytes(MANIFEST))
        files = dict(manifest["files"])
    except FileNotFoundError:
        raise ReleaseError(f"release {root.url().rsplit('/', 1)[-1]} is incomplete: {where} is missing") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ReleaseError(f"{where}: corrupt manifest ({err})") from err
    for rel, digest in files.items():
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or "" in parts:
            raise ReleaseError(f"{where} names {rel!r}, outside the release")
        if not root.exists(rel):
            raise ReleaseError(f"{root.url(rel)} is missing")
        if root.sha256(rel) != digest:
            raise ReleaseError(f"{root.url(rel)} does not match its recorded digest (corrupt, truncated or changed)")
    return manifest


class DataDir:
    """A data directory of releases: who may write, what is live, and switching."""

    def __init__(self, where: str | Path | Location | None = None, endpoint_url: str | None = None,
                 clock: Callable[[], float] = time.time):
        """``clock``: the wall time (epoch seconds) that file ages are measured against: the
        lock's grace and the age of temporary files (a fixed clock in tests)."""
        self.location = location(where, endpoint_url)
        self.clock = clock

    @classmethod
    def at(cls, data_dir: str | Path | Location | None = None, endpoint_url: str | None = None) -> "DataDir":
        return cls(data_dir, endpoint_url)

    def __repr__(self) -> str:
        return f"DataDir({self.location.url()!r})"

    @property
    def root(self) -> Path:
        """The folder on the local disk (a local data dir only; for tests and tools)."""
        return local_root(self.location)

    # -- reading ---------------------------------------------------------------------
    def live_id(self) -> str | None:
        where = self.location.url(POINTER)
        try:
            release = json.loads(self.location.read_bytes(POINTER))["release"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:
            raise ReleaseError(f"{where}: not a release pointer ({err})") from err
        if not isinstance(release, str) or not RELEASE_ID.match(release):
            raise ReleaseError(f"{where}: {release!r} is not a release id")
        return release

    @staticmethod
    def release_name(release: str) -> str:
        if not RELEASE_ID.match(release):
            raise ReleaseError(f"{release!r} is not a release id")
        return f"{RELEASES}/{release}"

    def release_location(self, release: str) -> Location:
        return self.location.child(self.release_name(release))

    def release_dir(self, release: str) -> Path:
        """A release's folder on the local disk (a local data dir only)."""
        return self.root / self.release_name(release)

    def storage(self, release: str) -> Storage:
        return Storage(self.release_location(release), release=release)

    def live(self) -> Storage:
        """A reader's view: the live release, resolved once (keep the object for one
        consistent snapshot)."""
        release = self.live_id()
        if release is None:
            raise FileNotFoundError(f"no release is live in {self.location}; materialize the pipeline first")
        return self.storage(release)

    def manifest(self, release: str) -> dict:
        name = f"{self.release_name(release)}/{MANIFEST}"
        try:
            return json.loads(self.location.read_bytes(name))
        except FileNotFoundError:
            raise ReleaseError(f"release {release} is incomplete: {self.location.url(name)} is missing") from None
        except ValueError as err:
            raise ReleaseError(f"{self.location.url(name)}: corrupt manifest ({err})") from err

    def releases(self) -> list[dict]:
        """Complete releases and refused runs, newest first: id, created, live, metrics,
        and ``refused`` (the gate's reasons; None for a complete release)."""
        live = self.live_id()
        out = []
        for name in self.location.list(RELEASES):
            if RELEASE_ID.match(name) and self.location.exists(f"{RELEASES}/{name}/{MANIFEST}"):
                m = self.manifest(name)
                out.append({"release": name, "created": m.get("created"), "live": name == live,
                            "metrics": m.get("metrics", {}), "refused": None})
        for name in self.location.list(REFUSED):
            if RELEASE_ID.match(name.removesuffix(".json")):
                r = json.loads(self.location.read_bytes(f"{REFUSED}/{name}"))
                out.append({"release": r["release"], "created": r.get("created"), "live": False,
                            "metrics": r.get("metrics", {}), "refused": r.get("problems", [])})
        return sorted(out, key=lambda r: r["created"] or "", reverse=True)

    def refuse(self, run_id: str, problems: list[str], metrics: dict) -> None:
        """Record that the release gate kept this run from going live, and why (its files
        go with the next run's debris; the record stays until pruned)."""
        record = {"release": run_id, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "problems": problems, "metrics": metrics}
        self.location.write_bytes(f"{REFUSED}/{run_id}.json", json.dumps(record, indent=2, sort_keys=True).encode())

    def verify(self, release: str) -> dict:
        """The manifest, after checking every file it lists has its recorded digest."""
        return verify_files(self.release_location(release))

    # -- writing (under the lock) ----------------------------------------------------
    def acquire(self, run_id: str, grace_seconds: float = 30.0, wait_seconds: float = 0.0,
                finished: Callable[[str], bool | None] = lambda run_id: None) -> None:
        """Hold the data directory for ``run_id`` (re-entrant for its steps). The holder's
        lock is taken over when ``finished(holder)`` says its run has ended (a run that did
        not reach the release step), or when its last process is gone and nothing refreshed
        the lock for ``grace_seconds`` (a killed run: every process of a live run refreshes
        it, :meth:`heartbeat`). Otherwise wait up to ``wait_seconds``, then raise
        :class:`LockHeld`. A takeover replaces the lock only if it still holds the bytes
        judged stale (:meth:`Location.take_over`): of many writers taking over one stale
        lock, exactly one gets it."""
        self.location.check()
        deadline = time.monotonic() + wait_seconds
        me = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
              "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        while True:
            if self.location.create(LOCK, json.dumps(me).encode()):
                self._taken(run_id)
                return
            raw, holder = self._holder_record()
            if holder.get("run_id") == run_id:  # another step of the run: name its process
                self.location.replace_if_unchanged(LOCK, json.dumps({**me, "since": holder.get("since")}).encode())
                return
            if raw is not None and (finished(holder.get("run_id", "")) or self._stale(holder, grace_seconds)):
                if self.location.take_over(LOCK, raw, json.dumps(me).encode()):
                    self._taken(run_id)
                    return
                continue  # another writer changed it first: judge the new holder
            if time.monotonic() >= deadline:
                raise LockHeld(self._held_message(holder, grace_seconds)) from None
            time.sleep(1.0)

    def _taken(self, run_id: str) -> None:
        """What a new lock holder does first: remove dead runs' debris and mend a database
        that a switch cut short left behind."""
        self.clean_debris(keep=run_id)
        self.repair_duckdb()

    def _holder(self) -> dict:
        return self._holder_record()[1]

    def _holder_record(self) -> tuple[bytes | None, dict]:
        """The lock's bytes (None when there is no lock) and the holder they name ({} when
        unreadable)."""
        try:
            raw = self.location.read_bytes(LOCK)
        except FileNotFoundError:
            return None, {}
        try:
            holder = json.loads(raw)
        except ValueError:
            return raw, {}
        return raw, holder if isinstance(holder, dict) else {}

    def _stale(self, holder: dict, grace_seconds: float) -> bool:
        try:
            age = self.clock() - self.location.mtime(LOCK)
        except FileNotFoundError:
            return True
        if holder.get("host") not in (None, socket.gethostname()):
            return False  # cannot see the process: only its owner or a human removes it
        pid = holder.get("pid")
        return (not isinstance(pid, int) or not _alive(pid)) and age >= grace_seconds

    def _held_message(self, holder: dict, grace_seconds: float) -> str:
        who = (f"{self.location} is locked by run {holder.get('run_id')} (pid {holder.get('pid')} on "
               f"{holder.get('host')}, since {holder.get('since')})")
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
            try:
                left = max(grace_seconds - (self.clock() - self.location.mtime(LOCK)), 0.0)
            except FileNotFoundError:
                left = 0.0
            ends = dt.datetime.fromtimestamp(self.clock() + left, dt.timezone.utc).isoformat(timespec="seconds")
            return (f"{who}; its process is gone, and the lock is taken over when its {grace_seconds:g} s grace "
                    f"ends at {ends} ({left:.0f} s from now): run again then")
        return f"{who}; wait for it to finish, or set storage.lock_wait_seconds to queue behind it"

    def release_lock(self, run_id: str) -> None:
        if self._holder().get("run_id") == run_id:
            self.location.remove(LOCK)

    def holds(self, run_id: str) -> bool:
        return self._holder().get("run_id") == run_id

    def heartbeat(self, run_id: str, every_seconds: float = 5.0) -> None:
        """Keep the lock's time fresh from this process while ``run_id`` holds it, so a long
        step never looks abandoned (one daemon thread per process and run)."""
        key = (self.location.url(), run_id)
        if key in _HEARTBEATS:
            return

        def beat() -> None:
            try:
                while self._holder().get("run_id") == run_id:
                    if not self.location.touch(LOCK):
                        break
                    time.sleep(every_seconds)
            except Exception:  # the store went away: the step itself will report it
                pass
            _HEARTBEATS.discard(key)

        _HEARTBEATS.add(key)
        threading.Thread(target=beat, name=f"graphrec-lock-{run_id[:8]}", daemon=True).start()

    def for_run(self, run_id: str, grace_seconds: float = 30.0, wait_seconds: float = 0.0,
                finished: Callable[[str], bool | None] = lambda run_id: None) -> Storage:
        """The writable release of ``run_id`` (made on first use from the live one)."""
        self.acquire(run_id, grace_seconds, wait_seconds, finished)
        self.heartbeat(run_id)
        self._seed(run_id)
        return self.storage(run_id)

    def _seed(self, run_id: str, patience_seconds: float = 600.0) -> None:
        """Copy the live release into the run's, once: a run's first steps start together
        (``users`` and ``places``), so one of them takes the marker ``releases/.<id>.seeding``
        (created exclusively) and copies while the others wait for the copy to complete. A
        marker older than ``patience_seconds`` (its process died) is taken over."""
        dest, marker = self.release_name(run_id), f"{RELEASES}/.{run_id}.seeding"
        deadline = time.monotonic() + patience_seconds
        while not self.location.seeded(dest):
            if self.location.create(marker, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()):
                try:
                    if not self.location.seeded(dest):
                        live = self.live_id()
                        self.location.copy_tree(self.release_name(live) if live else f"{RELEASES}/.none", dest,
                                                skip=(MANIFEST, STAGING))
                finally:
                    self.location.remove(marker)
                return
            if time.monotonic() > deadline:
                self.location.remove(marker)
                deadline = time.monotonic() + patience_seconds
            time.sleep(0.2)

    def seal(self, run_id: str, manifest: dict) -> dict:
        """Record the release's file digests and ``manifest`` (metrics, run) in RELEASE.json."""
        root = self.release_location(run_id)
        full = {"release": run_id, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **manifest, "files": file_digests(root)}
        root.write_bytes(MANIFEST, json.dumps(full, indent=2, sort_keys=True).encode())
        return full

    def switch(self, release: str, verify: bool = True) -> None:
        """Point readers at ``release`` (complete, and verified unless its digests were
        just recorded) in one atomic write. Its DuckDB database is built first, beside the
        live one, and moved into place right after the pointer; a switch cut short between
        the two leaves a database that :meth:`repair_duckdb` finds and rebuilds."""
        if verify:
            self.verify(release)
        build_duckdb(self.storage(release), self.location, DUCKDB_NEXT)
        self.location.write_bytes(POINTER, json.dumps({"release": release}).encode())
        self.location.move(DUCKDB_NEXT, DUCKDB_FILE)

    def repair_duckdb(self) -> bool:
        """Rebuild ``graphrec.duckdb`` over the live release when its ``release`` view names
        another release or another data directory (or it is missing or unreadable): what a
        switch cut short between the pointer and the database leaves, or a data directory
        copied or moved (its views name the original's files). True if it rebuilt."""
        live = self.live_id()
        if live is None:
            return False
        try:
            with connect(self.location) as con:
                current = con.execute("SELECT release_id, data_dir FROM release").fetchone()
        except (FileNotFoundError, UnreadableFile, duckdb.Error):
            current = None
        if current == (live, self.location.url("")):
            return False
        build_duckdb(self.storage(live), self.location)
        return True

    @property
    def duckdb_url(self) -> str:
        return self.location.url(DUCKDB_FILE)

    @property
    def duckdb_path(self) -> Path:
        """The database file on the local disk (a local data dir only)."""
        return self.root / DUCKDB_FILE

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to ``graphrec.duckdb`` (the live release's views), on an
        object store too (:func:`graphrec_pipeline.storage.warehouse.connect`); a database
        left behind by a switch cut short is rebuilt first (:meth:`repair_duckdb`)."""
        try:
            self.repair_duckdb()
        except OSError:
            pass  # a read-only data directory: read what is there
        return connect(self.location)

    def clean_debris(self, keep: str) -> list[str]:
        """Remove what dead runs left: incomplete releases and temporary files older than
        ``DEBRIS_AGE_SECONDS``. Only names the pipeline makes are touched (run-id folders,
        ``.<name>.tmp`` files, seeding markers)."""
        removed = []
        live = self.live_id()
        for name in self.location.list(RELEASES):
            if name in (keep, live):
                continue
            if (RELEASE_ID.match(name) and not self.location.exists(f"{RELEASES}/{name}/{MANIFEST}")) or (
                name.startswith(".") and name.endswith((".tmp", ".seeding")) and keep not in name
            ):
                self.location.remove(f"{RELEASES}/{name}")
                removed.append(name)
        for name in self.location.list():  # a temporary file of a live writer is young: leave it
            if DEBRIS.match(name) and self.clock() - self._mtime(name) > DEBRIS_AGE_SECONDS:
                self.location.remove(name)
                removed.append(name)
        return removed

    def _mtime(self, name: str) -> float:
        try:
            return self.location.mtime(name)
        except FileNotFoundError:
            return self.clock()

    def prune(self, keep: int, min_age_hours: float = 0.0) -> list[str]:
        """Delete complete releases beyond the ``keep`` newest, and refused runs beyond the
        ``keep`` newest, older than ``min_age_hours``; never the live one, never a folder
        whose name is not a release id."""
        live = self.live_id()
        now = dt.datetime.now(dt.timezone.utc)
        removed = []
        listed = self.releases()
        for r in [r for r in listed if not r["refused"]][keep:] + [r for r in listed if r["refused"]][keep:]:
            created = dt.datetime.fromisoformat(r["created"]) if r["created"] else now
            if r["release"] != live and (now - created).total_seconds() >= 3600 * min_age_hours:
                self.location.remove(f"{REFUSED}/{r['release']}.json" if r["refused"] else self.release_name(r["release"]))
                removed.append(r["release"])
        return removed

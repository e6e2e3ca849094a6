"""Releases: every run writes into its own directory; one pointer says which is live.

Layout of a data directory::

    CURRENT.json              {"release": "<id>"}: the live release (replaced by rename)
    graphrec.duckdb           views over the live release's tables (rebuilt at each switch)
    .lock                     the run that may write: run id, pid, host, start time
    releases/<id>/            everything one run made: staging/, <table>.parquet, graph/,
                              model/, serving/, indexes/, eval_metrics/, RELEASE.json

A run's release starts as hard links to the live release's files (cheap; writes replace a
file by rename, so they never change the live one's bytes), then the run overwrites what
it makes. ``RELEASE.json`` (the file digests, the run, the headline metrics) is written
last, and only then does the pointer move: a reader that resolved the pointer reads one
complete release until it resolves again, and a crash anywhere leaves the previous one
live. Release ids are the Dagster run ids, so pruning touches nothing it did not create.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from graphrec_pipeline.storage import (
    DUCKDB_FILE,
    STAGING,
    Storage,
    build_duckdb,
    resolve_data_dir,
    sha256_file,
    write_atomic,
)

POINTER = "CURRENT.json"
RELEASES = "releases"
MANIFEST = "RELEASE.json"
LOCK = ".lock"
RELEASE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEBRIS = re.compile(r"^\..+\.tmp(\.wal)?$")
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


def file_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative POSIX paths), except the manifest."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST and not rel.startswith(f"{STAGING}/") and not DEBRIS.match(path.name):
            out[rel] = sha256_file(path)
    return out


def verify_files(root: Path) -> dict:
    """The release manifest under ``root``, after checking that every file it lists lies
    inside ``root`` and has its recorded digest."""
    path = root / MANIFEST
    if not path.exists():
        raise ReleaseError(f"release {root.name} is incomplete: {path} is missing")
    try:
        manifest = json.loads(path.read_text())
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as err:
        raise ReleaseError(f"{path}: corrupt manifest ({err})") from err
    for rel, digest in files.items():
        file = root / rel
        if not file.resolve().is_relative_to(root.resolve()):
            raise ReleaseError(f"{path} names {rel!r}, outside the release")
        if not file.is_file():
            raise ReleaseError(f"{file} is missing")
        if sha256_file(file) != digest:
            raise ReleaseError(f"{file} does not match its recorded digest (corrupt, truncated or changed)")
    return manifest


@dataclass
class DataDir:
    """A data directory of releases: who may write, what is live, and switching."""

    root: Path

    @classmethod
    def at(cls, data_dir: str | Path | None = None) -> "DataDir":
        return cls(resolve_data_dir(str(data_dir) if data_dir else None))

    # -- reading ---------------------------------------------------------------------
    def live_id(self) -> str | None:
        path = self.root / POINTER
        if not path.exists():
            return None
        try:
            release = json.loads(path.read_text())["release"]
        except (ValueError, KeyError, TypeError) as err:
            raise ReleaseError(f"{path}: not a release pointer ({err})") from err
        if not isinstance(release, str) or not RELEASE_ID.match(release):
            raise ReleaseError(f"{path}: {release!r} is not a release id")
        return release

    def release_dir(self, release: str) -> Path:
        if not RELEASE_ID.match(release):
            raise ReleaseError(f"{release!r} is not a release id")
        return self.root / RELEASES / release

    def live(self) -> Storage:
        """A reader's view: the live release, resolved once (keep the object for one
        consistent snapshot)."""
        release = self.live_id()
        if release is None:
            raise FileNotFoundError(f"no release is live in {self.root}; materialize the pipeline first")
        return Storage(self.release_dir(release), release=release)

    def manifest(self, release: str) -> dict:
        path = self.release_dir(release) / MANIFEST
        if not path.exists():
            raise ReleaseError(f"release {release} is incomplete: {path} is missing")
        try:
            return json.loads(path.read_text())
        except ValueError as err:
            raise ReleaseError(f"{path}: corrupt manifest ({err})") from err

    def releases(self) -> list[dict]:
        """Complete releases, newest first: id, created, live, metrics."""
        live = self.live_id()
        out = []
        for d in sorted((self.root / RELEASES).glob("*")) if (self.root / RELEASES).is_dir() else []:
            if RELEASE_ID.match(d.name) and (d / MANIFEST).exists():
                m = self.manifest(d.name)
                out.append({"release": d.name, "created": m.get("created"), "live": d.name == live,
                            "metrics": m.get("metrics", {})})
        return sorted(out, key=lambda r: r["created"] or "", reverse=True)

    def verify(self, release: str) -> dict:
        """The manifest, after checking every file it lists has its recorded digest."""
        return verify_files(self.release_dir(release))

    # -- writing (under the lock) ----------------------------------------------------
    def acquire(self, run_id: str, grace_seconds: float = 30.0, wait_seconds: float = 0.0,
                finished: Callable[[str], bool | None] = lambda run_id: None) -> None:
        """Hold the data directory for ``run_id`` (re-entrant for its steps). The holder's
        lock is taken over when ``finished(holder)`` says its run has ended (a run that did
        not reach the release step), or when its last process is gone and nothing refreshed
        the lock for ``grace_seconds`` (a killed run: every process of a live run refreshes
        it, :meth:`heartbeat`). Otherwise wait up to ``wait_seconds``, then raise
        :class:`LockHeld`."""
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        me = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
              "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        path = self.root / LOCK
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("run_id") == run_id:
                    write_atomic(path, json.dumps({**me, "since": holder.get("since", me["since"])}).encode())
                    return
                if finished(holder.get("run_id", "")) or self._stale(holder, grace_seconds):
                    path.unlink(missing_ok=True)
                    continue
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"{self.root} is locked by run {holder.get('run_id')} (pid {holder.get('pid')} on "
                        f"{holder.get('host')}, since {holder.get('since')}); wait for it to finish, or set "
                        "storage.lock_wait_seconds to queue behind it"
                    ) from None
                time.sleep(1.0)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.clean_debris(keep=run_id)
            return

    def _holder(self) -> dict:
        try:
            return json.loads((self.root / LOCK).read_text())
        except (OSError, ValueError):
            return {}

    def _stale(self, holder: dict, grace_seconds: float) -> bool:
        try:
            age = time.time() - (self.root / LOCK).stat().st_mtime
        except FileNotFoundError:
            return True
        if holder.get("host") not in (None, socket.gethostname()):
            return False  # cannot see the process: only its owner or a human removes it
        pid = holder.get("pid")
        return (not isinstance(pid, int) or not _alive(pid)) and age >= grace_seconds

    def release_lock(self, run_id: str) -> None:
        if self._holder().get("run_id") == run_id:
            (self.root / LOCK).unlink(missing_ok=True)

    def holds(self, run_id: str) -> bool:
        return self._holder().get("run_id") == run_id

    def heartbeat(self, run_id: str, every_seconds: float = 5.0) -> None:
        """Keep the lock's time fresh from this process while ``run_id`` holds it, so a long
        step never looks abandoned (one daemon thread per process and run)."""
        key = (str(self.root), run_id)
        if key in _HEARTBEATS:
            return

        def beat() -> None:
            while self.holds(run_id):
                try:
                    os.utime(self.root / LOCK)
                except FileNotFoundError:
                    break
                time.sleep(every_seconds)
            _HEARTBEATS.discard(key)

        _HEARTBEATS.add(key)
        threading.Thread(target=beat, name=f"graphrec-lock-{run_id[:8]}", daemon=True).start()

    def for_run(self, run_id: str, grace_seconds: float = 30.0, wait_seconds: float = 0.0,
                finished: Callable[[str], bool | None] = lambda run_id: None) -> Storage:
        """The writable release of ``run_id`` (made on first use from the live one)."""
        self.acquire(run_id, grace_seconds, wait_seconds, finished)
        self.heartbeat(run_id)
        dest = self.release_dir(run_id)
        if not dest.exists():
            tmp = dest.with_name(f".{run_id}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            live = self.live_id()
            if live is not None and self.release_dir(live).is_dir():
                src = self.release_dir(live)
                shutil.copytree(src, tmp, copy_function=os.link,
                                ignore=lambda d, names: [n for n in names if n in (MANIFEST, STAGING) and Path(d) == src])
            else:
                tmp.mkdir(parents=True)
            os.replace(tmp, dest)
        return Storage(dest, release=run_id)

    def seal(self, run_id: str, manifest: dict) -> dict:
        """Record the release's file digests and ``manifest`` (metrics, run) in RELEASE.json."""
        root = self.release_dir(run_id)
        full = {"release": run_id, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **manifest, "files": file_digests(root)}
        write_atomic(root / MANIFEST, json.dumps(full, indent=2, sort_keys=True).encode())
        return full

    def switch(self, release: str, verify: bool = True) -> None:
        """Point readers at ``release`` (complete, and verified unless its digests were
        just recorded) by one atomic rename, then swap in a DuckDB database over its tables."""
        if verify:
            self.verify(release)
        write_atomic(self.root / POINTER, json.dumps({"release": release}).encode())
        build_duckdb(self.duckdb_path, Storage(self.release_dir(release), release=release))

    @property
    def duckdb_path(self) -> Path:
        return self.root / DUCKDB_FILE

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to ``graphrec.duckdb`` (the live release's views)."""
        if not self.duckdb_path.exists():
            raise FileNotFoundError(f"{self.duckdb_path} does not exist; materialize the pipeline first")
        return duckdb.connect(str(self.duckdb_path), read_only=True)

    def clean_debris(self, keep: str) -> list[str]:
        """Remove what dead runs left: incomplete releases and temporary files. Only names
        the pipeline makes are touched (run-id folders, ``.<name>.tmp`` files)."""
        removed = []
        releases = self.root / RELEASES
        live = self.live_id()
        for d in sorted(releases.iterdir()) if releases.is_dir() else []:
            if d.name in (keep, live):
                continue
            if (RELEASE_ID.match(d.name) and not (d / MANIFEST).exists()) or (
                d.name.startswith(".") and d.name.endswith(".tmp")
            ):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        for f in self.root.iterdir():
            if f.is_file() and DEBRIS.match(f.name):
                f.unlink(missing_ok=True)
                removed.append(f.name)
        return removed

    def prune(self, keep: int, min_age_hours: float = 0.0) -> list[str]:
        """Delete complete releases beyond the ``keep`` newest, older than ``min_age_hours``;
        never the live one, never a folder whose name is not a release id."""
        live = self.live_id()
        now = dt.datetime.now(dt.timezone.utc)
        removed = []
        for r in self.releases()[keep:]:
            created = dt.datetime.fromisoformat(r["created"]) if r["created"] else now
            if r["release"] != live and (now - created).total_seconds() >= 3600 * min_age_hours:
                shutil.rmtree(self.release_dir(r["release"]))
                removed.append(r["release"])
        return removed

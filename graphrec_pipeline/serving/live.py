"""The recommender of the live release, swapped without a restart when the release pointer
moves (a new run goes live, or a rollback).

A poller thread reads the pointer every ``poll_seconds``; when it names another release,
that release is loaded and verified *beside* the one being served, then swapped in by one
reference assignment. A request takes the reference once (:meth:`LiveRecommender.get`) and
finishes on that version; nothing in memory is freed under it. A release that fails to load
is logged and reported by :meth:`status`; the previous one keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time

from graphrec_pipeline.releases import DataDir, ReleaseError
from graphrec_pipeline.storage import StorageUnavailable
from graphrec_pipeline.serving.query import AssetError
from graphrec_pipeline.serving.recommender import Recommender

log = logging.getLogger("graphrec.serve")


class LiveRecommender:
    """Follows ``data``'s live release; ``settings`` go to :class:`Recommender`."""

    def __init__(self, data: DataDir, poll_seconds: float = 1.0, clock=time.time, **settings):
        """``clock``: wall time, for when the served release was loaded (``status``)."""
        self.data, self.poll_seconds, self.settings, self.clock = data, poll_seconds, settings, clock
        self._loaded_at: float | None = None
        self._current: Recommender | None = None
        self._error: Exception | None = None
        self._failed: str | None = None
        self._load = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self) -> Recommender:
        """The recommender to answer one request with (raises :class:`AssetError` when no
        release could be loaded)."""
        current = self._current
        if current is None:
            err = self._error
            if isinstance(err, AssetError):
                raise err
            raise AssetError(f"nothing to serve from {self.data.location}: {err or 'no release loaded yet'}",
                             "the whole pipeline (dagster asset materialize --select '*')")
        return current

    def refresh(self) -> bool:
        """Load the live release if it is not the one being served; True when it swapped."""
        with self._load:
            try:
                live = self.data.live_id()
            except (ReleaseError, StorageUnavailable) as err:
                self._note_failure(None, err)
                return False
            if live is None:
                if self._current is None:
                    self._error = FileNotFoundError(f"no release is live in {self.data.location}")
                return False
            if self._current is not None and live == self._current.release:
                self._error = self._failed = None  # e.g. rolled back from a release that failed
                return False
            if live == self._failed:
                return False
            try:
                loaded = Recommender(self.data.live(), **self.settings)
            except (AssetError, ReleaseError, FileNotFoundError, ValueError, RuntimeError) as err:
                self._note_failure(live, err)
                return False
            previous = self._current.release if self._current is not None else None
            self._current, self._error, self._failed = loaded, None, None
            self._loaded_at = self.clock()
            log.info("serving release %s (was %s)", loaded.release, previous)
            return True

    def _note_failure(self, release: str | None, err: Exception) -> None:
        self._failed, self._error = release, err
        serving = self._current.release if self._current is not None else None
        log.error("release %s could not be loaded (%s); still serving %s", release, err, serving)

    def status(self) -> dict:
        live = None
        try:
            live = self.data.live_id()
        except (ReleaseError, StorageUnavailable):
            pass
        return {"serving": self._current.release if self._current is not None else None, "live": live,
                "loaded_at": self._loaded_at, "error": None if self._error is None else str(self._error)}

    def start(self) -> "LiveRecommender":
        """Load the live release now, then follow the pointer in a daemon thread."""
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="graphrec-release-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the poller must outlive any one bad release
                log.exception("release poll failed")

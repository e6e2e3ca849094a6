"""Progress of long steps, for people watching the Dagster log: at least every ``every``
seconds a line with what is done, the rate and, when the total is known, an ETA."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EVERY_SECONDS = 30.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class Progress:
    """Counts units of a loop and logs at most every ``every`` seconds.

    ``deadline_seconds`` caps the ETA (a loop that stops at a time limit); ``clock`` gives
    the seconds the rate and the ETA are measured with (a fixed clock in tests)."""

    def __init__(self, what: str, total: int | None, log: Callable[[str], None], unit: str = "steps",
                 every: float = EVERY_SECONDS, deadline_seconds: float | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.what, self.total, self.log, self.unit, self.every = what, total, log, unit, every
        self.deadline, self.clock = deadline_seconds, clock
        self.done = 0
        self.start = self.last = clock()

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.log(self.line(now, note))

    def line(self, now: float, note: str = "") -> str:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.what}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {_clock(elapsed)} elapsed"
        if self.total and rate > 0:
            eta = (self.total - self.done) / rate
            if self.deadline is not None:
                eta = min(eta, max(self.deadline - elapsed, 0.0))
            text += f", ETA {_clock(eta)} at most" if self.deadline is not None else f", ETA {_clock(eta)}"
        return text + (f"; {note}" if note else "")


@contextmanager
def heartbeat(what: str, log: Callable[[str], None], every: float = EVERY_SECONDS,
              clock: Callable[[], float] = time.perf_counter) -> Iterator[None]:
    """For one long call that cannot report itself (a vectorized generator, a library
    loop): a thread logs ``still <what>, <elapsed>`` every ``every`` seconds until it returns."""
    stop = threading.Event()
    start = clock()

    def beat() -> None:
        while not stop.wait(every):
            log(f"still {what}, {_clock(clock() - start)} elapsed")

    thread = threading.Thread(target=beat, name=f"heartbeat: {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

"""Time, injected: the broker asks a Clock, tests hand it a fake one.

Timers too: `call_later` runs a callback after a delay on the event loop (Clock) or when a test
advances the fake time past it (FakeClock), so time-driven behaviour (session timeouts,
rebalance timeouts, delays) is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Callable, Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """Wall-clock milliseconds for timestamps, monotonic seconds for deadlines."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay_ms: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run `callback(*args)` on the running event loop after `delay_ms`."""
        return asyncio.get_running_loop().call_later(max(delay_ms, 0) / 1000, callback, *args)


class _FakeTimer:
    def __init__(self, due_ms: float, callback: Callable[..., Any], args: tuple) -> None:
        self.due_ms = due_ms
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock(Clock):
    """A clock that moves only when told to; its timers fire as `advance` passes them."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = now_ms
        self._monotonic = 0.0
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._sequence = itertools.count()

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._monotonic

    def call_later(self, delay_ms: float, callback: Callable[..., Any], *args: Any) -> Timer:
        timer = _FakeTimer(self._monotonic * 1000 + max(delay_ms, 0), callback, args)
        heapq.heappush(self._timers, (timer.due_ms, next(self._sequence), timer))
        return timer

    def advance(self, ms: int) -> None:
        """Move time on by `ms`, firing every timer that falls due, in order, at its own time."""
        target = self._monotonic * 1000 + ms
        while self._timers and self._timers[0][0] <= target:
            due, _, timer = heapq.heappop(self._timers)
            step = due - self._monotonic * 1000
            if step > 0:
                self._now_ms += int(step)
                self._monotonic = due / 1000
            if not timer.cancelled:
                timer.callback(*timer.args)
        remaining = target - self._monotonic * 1000
        self._now_ms += int(remaining)
        self._monotonic = target / 1000

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

"""The soak's sampler, and the rule that judges what it sampled.

Once a second: the broker's resident memory (VmRSS), its open file descriptors (the entries of
/proc/<pid>/fd), its threads and CPU seconds, and the "probe round trip": the time from sending
an ApiVersions v0 request on a dedicated, otherwise idle connection to reading its answer. The
broker answers ApiVersions straight from its event loop, so the probe round trip is the loop's
lag (plus a loopback round trip) seen from outside; it is not a latency of real requests.

The sampling runs in its own small process (this file as a script: `sampler.py PID HOST PORT`),
printing one JSON line per sample, so that the probe is never held up waiting for the GIL of the
process running the workload's client threads. The child half uses the standard library only.

`Sampler(pid, host, port)` starts the child and collects its samples on a thread;
`judge_flatness` is the rule the soak asserts on for memory and descriptors.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 10.0
PROBE_CLIENT_ID = b"odradek-soak-probe"
WARM_UP_MIN_S = 30.0
WARM_UP_FRACTION = 0.25
MiB = 1 << 20


# --- child side (no imports beyond the standard library) ----------------------------------------


def _api_versions_v0_frame(correlation_id: int) -> bytes:
    """ApiVersions v0: request header v1 (key 18, version 0, correlation id, client id), empty body."""
    body = struct.pack(">hhih", 18, 0, correlation_id, len(PROBE_CLIENT_ID)) + PROBE_CLIENT_ID
    return struct.pack(">i", len(body)) + body


class Probe:
    """One connection kept open for the whole soak; reconnects after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.correlation_id = 0

    def round_trip_ms(self) -> float | None:
        """Milliseconds for one ApiVersions answer; None if it failed or took over PROBE_TIMEOUT_S."""
        self.correlation_id += 1
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=PROBE_TIMEOUT_S)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            self.sock.sendall(_api_versions_v0_frame(self.correlation_id))
            size, correlation_id = struct.unpack(">ii", self._read(8))
            self._read(size - 4)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if correlation_id != self.correlation_id:
                raise ConnectionError(f"expected correlation id {self.correlation_id}, got {correlation_id}")
            return elapsed_ms
        except OSError:
            if self.sock is not None:
                self.sock.close()
            self.sock = None
            return None

    def _read(self, size: int) -> bytes:
        assert self.sock is not None
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
            data += chunk
        return bytes(data)


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)


def _cpu_seconds(pid: int) -> float:
    """utime + stime from /proc/<pid>/stat (fields 14 and 15, counted after the command name)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_until_gone(pid: int, host: str, port: int, interval_s: float = INTERVAL_S) -> None:
    """Print one JSON sample per `interval_s` until the broker process is gone."""
    probe = Probe(host, port)
    due = time.monotonic()
    while True:
        try:
            status = _proc_status(pid)
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            cpu_s = _cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            return
        sample = {
            "wall_s": time.time(),
            "rss_bytes": int(status["VmRSS"].split()[0]) * 1024,
            "fds": fds,
            "threads": int(status["Threads"]),
            "cpu_s": cpu_s,
            "probe_ms": probe.round_trip_ms(),
        }
        print(json.dumps(sample), flush=True)
        due += interval_s
        time.sleep(max(0.0, due - time.monotonic()))


# --- parent side ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the soak's workload started
    rss_bytes: int
    fds: int
    threads: int
    cpu_s: float
    probe_ms: float | None  # None: no answer within PROBE_TIMEOUT_S, or the connection failed


class Sampler:
    """The sampling child process and the samples it reported so far (a thread reads them)."""

    def __init__(self, pid: int, host: str, port: int, started_wall_s: float) -> None:
        self.started_wall_s = started_wall_s
        self.samples: list[Sample] = []
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(pid), host, str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="soak-sampler-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            raw = json.loads(line)
            self.samples.append(
                Sample(
                    t_s=raw["wall_s"] - self.started_wall_s,
                    rss_bytes=raw["rss_bytes"],
                    fds=raw["fds"],
                    threads=raw["threads"],
                    cpu_s=raw["cpu_s"],
                    probe_ms=raw["probe_ms"],
                )
            )

    def stop(self) -> list[Sample]:
        if self._process.poll() is None:
            self._process.terminate()
        self._process.wait(10)
        self._reader.join(10)
        return list(self.samples)


# --- judging -------------------------------------------------------------------------------------


def warm_up_s(workload_s: float) -> float:
    """The part of a run not judged: the first quarter, but at least 30 s.

    In the first seconds the broker loads code paths for the first time, fills its caches, the
    group settles, the offsets topic and the churn topics reach their steady number of segments
    (retention and compaction need a few of their 1 s passes) and Python's allocator grows its
    arenas to the working set. 30 s covers that at the CI length (90 s); a quarter of a long run
    leaves slow starters (page cache of growing logs, rarely-hit paths) out of the judgement too.
    """
    return max(WARM_UP_MIN_S, WARM_UP_FRACTION * workload_s)


@dataclass(frozen=True)
class Flatness:
    metric: str
    unit_divisor: float  # to show the values in `unit`
    unit: str
    first_window: tuple[float, float]
    last_window: tuple[float, float]
    first_max: float
    last_max: float
    allowed_max: float
    detectable_per_hour: float  # the smallest steady growth per hour that would exceed allowed_max

    @property
    def flat(self) -> bool:
        return self.last_max <= self.allowed_max

    def show(self, value: float) -> str:
        return f"{value / self.unit_divisor:.1f} {self.unit}" if self.unit else f"{value:.0f}"

    def describe(self) -> str:
        verdict = "flat" if self.flat else "NOT FLAT"
        return (
            f"{self.metric}: {verdict}: max {self.show(self.last_max)} in the last third "
            f"({self.last_window[0]:.0f}-{self.last_window[1]:.0f} s) against {self.show(self.first_max)} in the "
            f"first post-warm-up third ({self.first_window[0]:.0f}-{self.first_window[1]:.0f} s); allowed "
            f"{self.show(self.allowed_max)}"
        )


def judge_flatness(
    samples: Sequence[Sample],
    value: Callable[[Sample], float],
    workload_s: float,
    relative_slack: float,
    absolute_slack: float,
    metric: str = "",
    unit: str = "",
    unit_divisor: float = 1.0,
) -> Flatness:
    """Flat means: the maximum in the last third of the judged part of the run is at most the
    maximum in its first third times (1 + relative_slack) plus absolute_slack.

    The judged part is [warm_up_s(workload_s), workload_s]; the final verification reads that
    follow the workload are not judged. Maxima, not means: memory moves in a sawtooth (the
    garbage collector, the allocator's arenas, a large fetch response) and the high-water mark is
    what a container's memory limit sees; both windows are a third of the run long, so each
    contains its share of such peaks and the peaks cancel out. Comparing the first and last
    thirds (not the warm-up) measures growth over the middle third plus a third: a steady leak of
    r per second shows up as about r * 2/3 * (judged seconds) between the two maxima. The slack
    is what an honest broker may vary by: the relative part scales with the working set of a
    long run, the absolute part absorbs noise that does not scale (allocator granularity,
    connections in flight). The same rule is sound at 90 s (where it catches only fast leaks) and
    at 3 h (where the same slack spread over 90 minutes catches a leak of a few MiB per hour):
    `detectable_per_hour` says which, for the report.
    """
    start = warm_up_s(workload_s)
    third = (workload_s - start) / 3
    first_window = (start, start + third)
    last_window = (workload_s - third, workload_s)
    first = [value(s) for s in samples if first_window[0] <= s.t_s < first_window[1]]
    last = [value(s) for s in samples if last_window[0] <= s.t_s <= last_window[1]]
    if not first or not last:
        raise ValueError(
            f"{metric}: no samples in {first_window} or {last_window} of a {workload_s:.0f} s run "
            f"({len(samples)} samples); the run is too short to judge"
        )
    first_max, last_max = max(first), max(last)
    allowed_max = first_max * (1 + relative_slack) + absolute_slack
    separation_h = 2 * third / 3600
    return Flatness(
        metric=metric,
        unit_divisor=unit_divisor,
        unit=unit,
        first_window=first_window,
        last_window=last_window,
        first_max=first_max,
        last_max=last_max,
        allowed_max=allowed_max,
        detectable_per_hour=(allowed_max - first_max) / separation_h if separation_h else math.inf,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


if __name__ == "__main__":
    sample_until_gone(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))

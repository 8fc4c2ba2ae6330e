"""Kafka's own perf tools: kafka-producer-perf-test and kafka-consumer-perf-test (their main classes)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from brokers import on_cpus

PRODUCER_MAIN = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_MAIN = "org.apache.kafka.tools.ConsumerPerformance"
# kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh set KAFKA_HEAP_OPTS=-Xmx512M
TOOL_JVM = ["-Xmx512M", "-XX:+UseG1GC", "-Djava.awt.headless=true"]

_PRODUCED = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency"
)


class ToolFailed(RuntimeError):
    pass


def _java(libs: Path, log4j: Path, main: str, args: list[str], timeout: float, cpus: set[int] | None = None) -> str:
    """Run a tool's main class; `cpus`: the CPUs the JVM (all its threads) runs on, else any."""
    cmd = ["java", *TOOL_JVM, "-cp", str(libs / "*"), f"-Dlog4j2.configurationFile={log4j}", main, *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=on_cpus(cpus))
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise ToolFailed(f"timed out after {timeout:.0f} s; last output: {out[-300:]!r}") from None
    return r.stdout + r.stderr


def producer_perf(libs: Path, log4j: Path, bootstrap: str, topic: str, count: int, size: int, acks: str,
                  timeout: float = 240) -> dict:
    """The Java producer with its defaults (batch.size=16384, linger.ms=5, idempotence on) except acks."""
    out = _java(libs, log4j, PRODUCER_MAIN, [
        "--topic", topic, "--num-records", str(count), "--record-size", str(size), "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}",
    ], timeout)
    lines = [m for m in _PRODUCED.finditer(out)]
    if not lines:
        raise ToolFailed(_excerpt(out))
    m = lines[-1]
    sent, rate = int(m.group(1)), float(m.group(2))
    result = {"records": sent, "bytes": sent * size, "seconds": sent / rate if rate else 0.0,
              "records_per_s": rate, "mb_per_s": rate * size / 1e6,
              "avg_latency_ms": float(m.group(4)), "max_latency_ms": float(m.group(5))}
    if "Exception" in out:
        result["errors"] = [_excerpt(out)]
    return result


def consumer_perf(libs: Path, log4j: Path, bootstrap: str, topic: str, count: int, group: str,
                  timeout: float = 240, cpus: set[int] | None = None) -> dict:
    """kafka-consumer-perf-test: a consumer in a group, from the earliest offset.

    Its throughput figure here is over the fetch time (fetch.nMsg.sec), which leaves out the group join.
    """
    out = _java(libs, log4j, CONSUMER_MAIN, [
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(count), "--group", group,
        "--timeout", "20000",
    ], timeout, cpus)
    header = None
    for line in out.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if cells and cells[0] == "start.time":
            header = cells
        elif header and len(cells) == len(header):
            row = dict(zip(header, cells))
            try:
                n = int(row["data.consumed.in.nMsg"])
                nbytes = round(float(row["data.consumed.in.MB"]) * 1024 * 1024)
                fetch_mb = float(row["fetch.MB.sec"]) * 1024 * 1024 / 1e6
                fetch_rate = float(row["fetch.nMsg.sec"])
                fetch_s = float(row["fetch.time.ms"]) / 1000
                rebalance_ms = float(row["rebalance.time.ms"])
            except (KeyError, ValueError):
                continue
            if n < count:
                raise ToolFailed(f"consumed {n} of {count} records; {_excerpt(out)}")
            return {"records": n, "bytes": nbytes, "seconds": fetch_s, "records_per_s": fetch_rate,
                    "mb_per_s": fetch_mb, "rebalance_ms": rebalance_ms}
    raise ToolFailed(_excerpt(out))


def _excerpt(out: str) -> str:
    keep = [l for l in out.splitlines() if l.strip() and "deprecated" not in l and not l.startswith("\tat ")]
    interesting = [l for l in keep if "Exception" in l or "ERROR" in l or "WARN" in l or "rror" in l]
    return " | ".join((interesting or keep)[:4])[:500]

"""What serving metrics.listener costs odradek (issue 14): produce and consume throughput with the HTTP
side off and on while Prometheus-style scrapes of /metrics come every second, and the time of one
scrape with 10,000 partitions.

    .venv/bin/python bench/metrics.py [--runs 3] [--no-write]

Each row is the median of --runs runs (off and on interleaved, a fresh broker each), each at least
5 s of librdkafka producing (1 KiB, acks=1, 6 partitions) and then consuming with assign(). The
table goes to stdout and to bench/results/<date>-metrics.md. Benchmarks report; they never fail.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BENCH = Path(__file__).resolve().parent
RECORDS, SIZE, PARTITIONS, MIN_SECONDS = 300_000, 1024, 6, 5.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rdkafka(*args) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / "rdkafka_client.py"), *map(str, args)],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names], request_timeout=300, operation_timeout=300)
    for future in futures.values():
        future.result(300)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = admin.list_topics(timeout=30).topics
        if all(n in listed and len(listed[n].partitions) == partitions
               and all(p.leader >= 0 for p in listed[n].partitions.values()) for n in names):
            return
        time.sleep(0.1)


class Scraper(threading.Thread):
    """GET /metrics every second, as Prometheus would; keeps each scrape's seconds."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.times, self.stopping = url, [], threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            started = time.monotonic()
            urllib.request.urlopen(self.url, timeout=60).read()
            self.times.append(time.monotonic() - started)


def one_run(metrics_on: bool, index: int) -> dict:
    broker = brokers.OdradekBroker(brokers.make_workdir())
    if metrics_on:
        broker.extra_config["metrics.listener"] = f"http://127.0.0.1:{brokers.free_port()}"
    broker.start()
    scraper = None
    try:
        topic = f"metrics-{index}"
        create_topics(broker.bootstrap, [topic], PARTITIONS)
        if metrics_on:
            scraper = Scraper(broker.extra_config["metrics.listener"] + "/metrics")
            scraper.start()
        produced = rdkafka("produce", broker.bootstrap, topic, RECORDS, SIZE, "1", "--min-seconds", MIN_SECONDS)
        consumed = rdkafka("consume", broker.bootstrap, topic, RECORDS, "--min-seconds", MIN_SECONDS)
    finally:
        if scraper is not None:
            scraper.stopping.set()
            scraper.join(60)
        broker.stop()
        shutil.rmtree(broker.workdir, ignore_errors=True)
    return {"produce": produced["mb_per_s"], "consume": consumed["mb_per_s"],
            "scrapes": len(scraper.times) if scraper else 0,
            "scrape_s": statistics.median(scraper.times) if scraper and scraper.times else None}


def wide_scrape() -> list[float]:
    """Seconds of three scrapes of a broker holding 10 topics of 1,000 partitions."""
    broker = brokers.OdradekBroker(brokers.make_workdir())
    broker.extra_config["metrics.listener"] = f"http://127.0.0.1:{brokers.free_port()}"
    broker.start()
    try:
        create_topics(broker.bootstrap, [f"wide-{i}" for i in range(10)], 1000)
        times = []
        for _ in range(3):
            started = time.monotonic()
            body = urllib.request.urlopen(broker.extra_config["metrics.listener"] + "/metrics", timeout=120).read()
            times.append(time.monotonic() - started)
        log(f"scrape of 10,000 partitions: {len(body):,} bytes, {', '.join(f'{t:.3f}' for t in times)} s")
        return times
    finally:
        broker.stop()
        shutil.rmtree(broker.workdir, ignore_errors=True)


def spread(values: list[float]) -> str:
    middle = statistics.median(values)
    return f"±{(max(values) - min(values)) / 2 / middle * 100:.0f}%" if middle else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for index in range(args.runs):
        for metrics_on in (False, True):
            log(f"run {index + 1}, metrics {'on' if metrics_on else 'off'}")
            runs[metrics_on].append(one_run(metrics_on, index))
            log(f"  {runs[metrics_on][-1]}")
    wide = wide_scrape()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=BENCH.parent).stdout.strip()
    lines = [
        f"# metrics.listener on and off, odradek at {commit}, {datetime.date.today()}",
        "",
        f"`.venv/bin/python bench/metrics.py --runs {args.runs}`: {RECORDS:,}+ records of {SIZE} B (at least "
        f"{MIN_SECONDS:.0f} s) produced with librdkafka (acks=1, {PARTITIONS} partitions), then consumed with "
        "assign(); with metrics on, /metrics is scraped every second throughout. Median of the runs, ± half the range.",
        "",
        "| workload | metrics off | metrics on | on/off |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in ("produce", "consume"):
        off = [r[kind] for r in runs[False]]
        on = [r[kind] for r in runs[True]]
        lines.append(f"| {kind}, MB/s | {statistics.median(off):.0f} {spread(off)} | {statistics.median(on):.0f} "
                     f"{spread(on)} | {statistics.median(on) / statistics.median(off):.2f} |")
    scrapes = [r["scrape_s"] for r in runs[True] if r["scrape_s"] is not None]
    lines += ["", f"A scrape during the workload (6 partitions): median {statistics.median(scrapes) * 1000:.0f} ms.",
              f"A scrape with 10,000 partitions (10 topics of 1,000), idle: median {statistics.median(wide) * 1000:.0f} ms "
              f"({', '.join(f'{t * 1000:.0f}' for t in wide)} ms).", ""]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        path = BENCH / "results" / f"{datetime.date.today()}-metrics.md"
        path.write_text(report)
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Consumer-group timings against Apache Kafka and odradek, same machine, same clients.

- stabilise: 10 librdkafka consumer processes subscribe to a 20-partition topic at once; time from
  the first subscribe until every partition is assigned to exactly one member.
- reassign after a death: `kill -9` one member; time until the survivors own all partitions again
  (bounded below by the session timeout, 6 s here, which is the group.min.session.timeout.ms).
Both brokers run with group.initial.rebalance.delay.ms=0 (Kafka's example server.properties; the
3 s default would dominate the first figure). Run: `.venv/bin/python bench/groups.py [--only odradek]`.
Prints a table; never fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brokers  # noqa: E402
import kafka_dist  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

MEMBERS = 10
PARTITIONS = 20
SESSION_TIMEOUT_MS = 6000

MEMBER = textwrap.dedent(
    """
    import json, sys, time
    from confluent_kafka import Consumer
    bootstrap, topic, session_ms = sys.argv[1], sys.argv[2], sys.argv[3]
    def report(kind, partitions):
        print(json.dumps({"t": time.time(), "kind": kind, "partitions": sorted(p.partition for p in partitions)}), flush=True)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-group", "session.timeout.ms": session_ms,
                  "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})
    c.subscribe([topic], on_assign=lambda c, p: report("assign", p), on_revoke=lambda c, p: report("revoke", p))
    while True:
        c.poll(0.2)
    """
)


def owners(events: dict[int, list[dict]], members: set[int]) -> dict[int, set[int]]:
    """Partition -> members that currently hold it, from each member's last assign/revoke."""
    held: dict[int, set[int]] = {}
    for member in members:
        current: set[int] = set()
        for event in events[member]:
            current = set(event["partitions"]) if event["kind"] == "assign" else set()
        for partition in current:
            held.setdefault(partition, set()).add(member)
    return held


def run_groups(bootstrap: str) -> dict[str, float]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("bench-groups", PARTITIONS, 1)])["bench-groups"].result(30)
    script = Path(tempfile.mkdtemp()) / "member.py"
    script.write_text(MEMBER)
    procs = []
    events: dict[int, list[dict]] = {i: [] for i in range(MEMBERS)}
    start = time.time()
    for i in range(MEMBERS):
        procs.append(
            subprocess.Popen([sys.executable, str(script), bootstrap, "bench-groups", str(SESSION_TIMEOUT_MS)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        )
    for proc in procs:
        os.set_blocking(proc.stdout.fileno(), False)

    def pump() -> None:
        for i, proc in enumerate(procs):
            while True:
                line = proc.stdout.readline()
                if not line:
                    break
                events[i].append(json.loads(line))

    def wait_all_owned(members: set[int], deadline_s: float) -> float | None:
        while time.time() < deadline_s:
            pump()
            held = owners(events, members)
            if len(held) == PARTITIONS and all(len(m) == 1 for m in held.values()):
                return time.time()
            time.sleep(0.02)
        return None

    try:
        stable = wait_all_owned(set(range(MEMBERS)), start + 120)
        results = {"stabilise_s": (stable - start) if stable else float("nan")}
        time.sleep(2)
        victim = 0
        procs[victim].send_signal(signal.SIGKILL)
        killed = time.time()
        reassigned = wait_all_owned(set(range(1, MEMBERS)), killed + 120)
        results["reassign_after_death_s"] = (reassigned - killed) if reassigned else float("nan")
        return results
    finally:
        for proc in procs:
            proc.kill()


class OdradekWithoutInitialDelay(brokers.OdradekBroker):
    """odradek at its defaults but for the initial rebalance delay, as the Kafka broker here."""

    def _command(self):
        command, env = super()._command()
        return [*command, "--override", "group.initial.rebalance.delay.ms=0"], env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("kafka", "odradek"))
    args = ap.parse_args(argv)
    rows: dict[str, dict[str, float]] = {}
    targets = []
    if args.only != "odradek":
        version = kafka_dist.newest_4x()
        targets.append(("Apache Kafka", lambda wd: brokers.KafkaBroker(wd, kafka_dist.ensure_kafka(version), version)))
    if args.only != "kafka":
        targets.append(("odradek", lambda wd: OdradekWithoutInitialDelay(wd)))
    for name, make in targets:
        broker = make(brokers.make_workdir())
        broker.prepare()
        broker.start()
        try:
            rows[name] = run_groups(broker.bootstrap)
        finally:
            broker.stop()
    print(f"| figure ({MEMBERS} members, {PARTITIONS} partitions, session {SESSION_TIMEOUT_MS} ms) | " + " | ".join(rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for key, label in (("stabilise_s", "group of 10 stable (s)"), ("reassign_after_death_s", "kill -9 to full reassignment (s)")):
        print(f"| {label} | " + " | ".join(f"{rows[n][key]:.2f}" for n in rows) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

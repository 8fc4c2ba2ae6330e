"""The CI slice of the protocol fuzzer (tests/fuzz/fuzzer.py; a million frames on demand):
well-formed requests of every advertised API version and mutations of them, while a real client
produces and consumes on other connections. Nothing may crash, hang, or reach a client as a
traceback, and the client must not notice. The seed is printed; ODRADEK_FUZZ_SEED replays it."""

from __future__ import annotations

import os
import random
import threading

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from fuzz import fuzzer
from integration.clients import Record, consume, produce

FRAMES = int(os.environ.get("ODRADEK_FUZZ_FRAMES", 3000))


def test_fuzzed_frames_never_crash_hang_or_disturb_a_client(broker):
    seed = int(os.environ.get("ODRADEK_FUZZ_SEED", random.randrange(1 << 30)))
    print(f"ODRADEK_FUZZ_SEED={seed}")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic("steady", 3, 1)])["steady"].result(30)
    sent: list[Record] = []
    failures: list[BaseException] = []

    def steady_client() -> None:
        try:
            for batch in range(10):
                records = [Record(b"k%d" % i, b"batch %d record %d" % (batch, i), partition=i % 3) for i in range(100)]
                produce("confluent", broker.bootstrap_servers, "steady", records, acks="all", idempotent=True)
                sent.extend(records)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    client = threading.Thread(target=steady_client)
    client.start()
    outcome = fuzzer.run(broker.host, broker.port, FRAMES, seed, per_version=1)
    client.join(120)

    assert not outcome.hangs, f"{len(outcome.hangs)} frames got no answer, e.g. {outcome.hangs[0][:64].hex()}"
    assert outcome.frames == FRAMES and outcome.answered > FRAMES // 5
    assert not failures, failures
    output = broker.output()
    assert "Traceback" not in output, output[output.index("Traceback") - 2000 : output.index("Traceback") + 3000]
    received = consume("confluent", broker.bootstrap_servers, "steady", range(3), len(sent))
    assert sorted(m.value for m in received) == sorted(r.value for r in sent)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "after-fuzz"})
    assert consumer.list_topics("steady", timeout=10).topics["steady"].error is None
    consumer.close()

"""The web console (/ui), end to end in headless Chromium, as a user would work with it: create a
topic in the form, grow another to 250 partitions and page through them, produce records through
the console's form and with confluent-kafka, browse them by offset and by time and in hex, edit
and reset a topic config, see the throughput counted, watch a consumer group's lag fall to 0 on
its page while a real consumer reads and commits, then delete the group and a topic.

Screenshots of each page go to the test's tmp_path, and to $ODRADEK_SCREENSHOT_DIR when it is
set; docs/console.png is one of them (topic-records.png), copied there by hand when the console
changes. Needs the `playwright` package and a Chromium binary (the Debian package `chromium`,
which scripts/ensure-system-packages.sh installs); `playwright install` is never needed.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import confluent_kafka
import pytest

from conftest import BrokerProcess, free_port

from .clients import Record, admin, create_topic, produce

sync_api = pytest.importorskip("playwright.sync_api", reason="the console test needs the playwright package (pip install playwright)")
expect, sync_playwright = sync_api.expect, sync_api.sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="the console test needs Chromium: apt-get install chromium "
                                                         "(scripts/ensure-system-packages.sh does it)")

TIMEOUT_MS = 30_000  # Playwright's waits; generous for a loaded 2-core machine
LAG_TIMEOUT_MS = 60_000
TOPIC = "console-demo"
WIDE = "console-wide"
GROUP = "console-readers"
RECORDS = 300  # with confluent-kafka, round robin over the 3 partitions


@pytest.fixture
def console_broker(request, tmp_path):
    port = free_port()
    broker = BrokerProcess(tmp_path / "broker", {"metrics.listener": f"http://127.0.0.1:{port}",
                                                 "group.initial.rebalance.delay.ms": "0"})
    request.node._odradek_brokers = [broker]  # its output joins the report of a failure
    broker.start()
    broker.http = f"http://127.0.0.1:{port}"
    _wait_for_http(broker)
    yield broker
    assert broker.stop() == 0, broker.output()


def _wait_for_http(broker, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{broker.http}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise AssertionError(f"{broker.http}/health did not answer within {timeout_s:.0f} s\n{broker.output()}")
        time.sleep(0.05)


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="UTC", locale="en-US")
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            yield page
        finally:
            browser.close()


class Screenshots:
    def __init__(self, page, tmp_path: Path) -> None:
        self.page = page
        self.dirs = [tmp_path / "screenshots"]
        if os.environ.get("ODRADEK_SCREENSHOT_DIR"):
            self.dirs.append(Path(os.environ["ODRADEK_SCREENSHOT_DIR"]))
        for directory in self.dirs:
            directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, full_page: bool = False) -> None:
        image = self.page.screenshot(full_page=full_page)
        for directory in self.dirs:
            (directory / f"{name}.png").write_bytes(image)


class GroupReader(threading.Thread):
    """A confluent-kafka member of GROUP reading TOPIC and committing every 200 ms until stopped."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.stopping = threading.Event()
        self.consumed = 0
        self.errors: list[str] = []

    def run(self) -> None:
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.bootstrap, "group.id": GROUP,
                                             "auto.offset.reset": "earliest", "auto.commit.interval.ms": 200,
                                             "client.id": "console-test-reader"})
        try:
            consumer.subscribe([TOPIC])
            while not self.stopping.is_set():
                message = consumer.poll(0.2)
                if message is None:
                    continue
                if message.error() is not None:
                    self.errors.append(str(message.error()))
                else:
                    self.consumed += 1
        finally:
            consumer.close()  # commits what was read and leaves the group

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the group member did not stop within 30 s"


def _order(i: int) -> bytes:
    return json.dumps({"order": i, "sku": f"sku-{i % 7}", "quantity": i % 5 + 1}, separators=(",", ":")).encode()


def _commit(bootstrap: str, offsets: dict[int, int]) -> None:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[confluent_kafka.TopicPartition(TOPIC, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def _wait_until_deleted(bootstrap: str, topic: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while topic in admin(bootstrap).list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {topic!r} still exists {timeout_s:.0f} s after the console deleted it"
        time.sleep(0.1)


def _accept_next_dialog(page) -> None:
    page.once("dialog", lambda dialog: dialog.accept())


def test_console_creates_browses_and_watches_a_group_catch_up(console_broker, page, tmp_path):
    expect.set_options(timeout=TIMEOUT_MS)
    shot = Screenshots(page, tmp_path)
    bootstrap = console_broker.bootstrap_servers
    test = lambda name: page.locator(f"[data-test={name}]")  # noqa: E731
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        # the overview
        page.goto(f"{console_broker.http}/ui")
        expect(test("sidebar-cluster-id")).to_have_text(re.compile(r"^[\w-]{8,}$"))
        expect(test("broker-row")).to_have_count(1)
        expect(test("controller")).to_have_text(re.compile(r"^broker \d+$"))
        expect(test("broker-row").locator("td").nth(1)).to_have_text(bootstrap)

        # create a topic in the form; the console opens its page
        test("nav-topics").click()
        test("create-topic-open").click()
        test("create-topic-name").fill(TOPIC)
        test("create-topic-partitions").fill("3")
        test("create-topic-replication").fill("1")
        test("create-topic-configs").fill("retention.ms=3600000")
        test("create-topic-submit").click()
        expect(page).to_have_url(re.compile(f"#/topics/{TOPIC}$"))
        expect(test("topic-title")).to_have_text(TOPIC)
        expect(test("partition-row")).to_have_count(3)
        expect(test("topic-summary")).to_contain_text("3 partitions · replication factor 1")

        # the API's errors are shown as they are
        test("nav-topics").click()
        test("create-topic-open").click()
        test("create-topic-name").fill(TOPIC)
        test("create-topic-submit").click()
        expect(test("error-message")).to_contain_text("TOPIC_ALREADY_EXISTS")

        # filter as you type, more partitions, paging
        create_topic(bootstrap, WIDE, partitions=1)
        test("topics-refresh").click()
        expect(test("topic-row")).to_have_count(2)
        test("topic-filter").fill("wid")
        expect(test("topic-row")).to_have_count(1)
        test("topic-link").click()
        expect(test("topic-title")).to_have_text(WIDE)
        test("add-partitions-count").fill("250")
        test("add-partitions-submit").click()
        expect(test("topic-summary")).to_contain_text("250 partitions")
        expect(test("partitions-pager-info")).to_have_text("1–100 of 250")
        expect(test("partition-row")).to_have_count(100)
        test("partitions-next").click()
        expect(test("partitions-pager-info")).to_have_text("101–200 of 250")
        expect(test("partition-row").first).to_have_attribute("data-partition", "100")
        shot("topic-partitions")

        # produce through the console's form
        page.goto(f"{console_broker.http}/ui#/topics/{TOPIC}/records")
        expect(test("records-info")).to_have_text("Partition 0: no records; the partition is empty.")
        test("produce-partition").fill("0")
        test("produce-key").fill("user-1")
        test("produce-value-type").select_option("JSON")
        test("produce-value").fill('{"name": "Ada", "visits": 1}')
        test("produce-headers").fill("source: console\ntrace: 42")
        test("produce-submit").click()
        expect(test("produce-result")).to_have_text("Produced to partition 0 at offset 0.")
        rows = test("record-row")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("[data-test=record-key]")).to_have_text("user-1")
        expect(rows.first.locator("[data-test=record-value]")).to_have_text('{"name":"Ada","visits":1}')
        expect(rows.first.locator("[data-test=record-headers]")).to_have_text("source: consoletrace: 42")
        # record contents are shown as text, never run as markup
        markup = '<img src=x onerror="window.__injected = 1">'
        test("produce-partition").fill("2")
        test("produce-key").fill("<b>user-2</b>")
        test("produce-value-type").select_option("STRING")
        test("produce-value").fill(markup)
        test("produce-headers").fill("")
        test("produce-submit").click()
        expect(test("produce-result")).to_have_text("Produced to partition 2 at offset 0.")
        expect(test("records-info")).to_contain_text("Partition 2: offsets 0–0")
        expect(rows.first.locator("[data-test=record-key]")).to_have_text("<b>user-2</b>")
        expect(rows.first.locator("[data-test=record-value]")).to_have_text(markup)
        assert page.evaluate("window.__injected") is None, "a record's value was run as markup"

        # and many with a Kafka client: partition 0 gets order-0, order-3, ... at offsets 1..100
        produce("confluent", bootstrap, TOPIC, [Record(b"order-%d" % i, _order(i), partition=i % 3) for i in range(RECORDS)])

        # browse by offset, page newer and older
        test("records-partition").fill("0")
        test("records-seek").select_option("offset")
        test("records-offset").fill("0")
        test("records-limit").fill("40")
        test("records-load").click()
        expect(test("records-info")).to_have_text("Partition 0: offsets 0–39; the partition holds offsets 0 to 100.")
        expect(rows).to_have_count(40)
        expect(rows.first.locator("[data-test=record-key]")).to_have_text("user-1")
        second = page.locator("[data-test=record-row][data-offset='1']")
        expect(second.locator("[data-test=record-key]")).to_have_text("order-0")
        expect(second.locator("[data-test=record-value]")).to_have_text(_order(0).decode())
        expect(rows.last.locator("[data-test=record-key]")).to_have_text("order-114")
        shot("topic-records")
        test("records-newer").click()
        expect(rows.first).to_have_attribute("data-offset", "40")
        test("records-newer").click()
        expect(rows.first).to_have_attribute("data-offset", "80")
        expect(rows).to_have_count(21)
        expect(rows.last.locator("[data-test=record-value]")).to_have_text(_order(297).decode())
        expect(test("records-newer")).to_be_disabled()
        test("records-older").click()
        expect(rows.first).to_have_attribute("data-offset", "40")

        # by time (before the topic existed: from its first record), and as hex
        test("records-seek").select_option("time")
        test("records-time").fill((started - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"))
        test("records-partition").fill("1")
        test("records-limit").fill("5")
        test("records-load").click()
        expect(test("records-info")).to_contain_text("Partition 1: offsets 0–4")
        expect(rows.first.locator("[data-test=record-key]")).to_have_text("order-1")
        test("records-seek").select_option("offset")
        test("records-offset").fill("1")
        test("records-limit").fill("1")
        test("records-format").select_option("hex")
        test("records-load").click()
        expect(rows).to_have_count(1)
        expect(rows.first.locator("[data-test=record-value]")).to_have_text(_order(4).hex())

        # edit a config, then reset it
        test("tab-configs").click()
        retention = page.locator("[data-test=config-row][data-config='retention.ms']")
        expect(retention.locator("[data-test=config-value]")).to_have_text("3600000")
        expect(retention.locator("[data-test=config-source]")).to_have_text("DYNAMIC_TOPIC_CONFIG")
        retention.locator("[data-test=config-edit]").click()
        retention.locator("[data-test=config-value-input]").fill("7200000")
        retention.locator("[data-test=config-save]").click()
        expect(retention.locator("[data-test=config-value]")).to_have_text("7200000")
        retention.locator("[data-test=config-reset]").click()
        expect(retention.locator("[data-test=config-source]")).to_have_text("DEFAULT_CONFIG")
        expect(retention.locator("[data-test=config-value]")).to_have_text("604800000")

        # the overview counts what came in
        test("nav-overview").click()
        expect(test("topic-count")).to_have_text("2")
        expect(test("partition-count")).to_have_text("253")
        page.wait_for_function("Number(document.querySelector('[data-test=total-records-in]')?.textContent"
                               f".replaceAll(',', '')) >= {RECORDS + 2}", timeout=TIMEOUT_MS)
        expect(page.locator("[data-test=spark-records_in] polyline")).to_have_count(1)
        shot("overview")

        # a group that has read part of the topic, then a member that reads the rest
        _commit(bootstrap, {0: 50, 1: 0, 2: 0})
        test("nav-groups").click()
        group_row = page.locator(f"[data-test=group-row][data-group='{GROUP}']")
        expect(group_row.locator("[data-test=group-row-state]")).to_have_text("EMPTY")
        group_row.locator("[data-test=group-link]").click()
        expect(test("group-title")).to_have_text(GROUP)
        expect(test("group-total-lag")).to_have_text("252")  # 101 - 50 + 100 + 101
        expect(test("lag-row")).to_have_count(3)
        expect(test("group-delete")).to_be_enabled()
        reader = GroupReader(bootstrap)
        reader.start()
        try:
            expect(test("group-total-lag")).to_have_text("0", timeout=LAG_TIMEOUT_MS)
            expect(test("member-row")).to_have_count(1, timeout=LAG_TIMEOUT_MS)
            expect(test("member-row")).to_contain_text("console-test-reader")
            expect(test("group-state")).to_have_text("STABLE")
            expect(test("group-delete")).to_be_disabled()
            expect(page.locator("[data-test=lag-sparkline] polyline")).to_have_count(1)
            shot("group")
        finally:
            reader.stop()
        assert reader.errors == [], reader.errors
        assert reader.consumed >= 2 + RECORDS - 50, reader.consumed  # partition 0 from offset 50 on

        # once the member left, the group can go
        expect(test("group-state")).to_have_text("EMPTY", timeout=LAG_TIMEOUT_MS)
        _accept_next_dialog(page)
        test("group-delete").click()
        expect(page).to_have_url(re.compile("#/groups$"))
        expect(test("groups")).to_contain_text("No consumer groups.")

        # and a topic, from the list
        test("nav-topics").click()
        wide_row = page.locator(f"[data-test=topic-row][data-topic='{WIDE}']")
        _accept_next_dialog(page)
        wide_row.locator("[data-test=topic-delete]").click()
        expect(wide_row).to_have_count(0)
        _wait_until_deleted(bootstrap, WIDE)

        assert page.errors == [], page.errors
    except BaseException:
        shot("failure", full_page=True)
        raise

"""The CI slice of the soak (tests/soak/workload.py; hours with `make soak`): 90 s of the mixed
workload (ODRADEK_SOAK_SECONDS to change it) against one broker, then every check the soak makes.
The report (report.md, soak.png, broker.log) is written to the test's tmp_path, printed below."""

from __future__ import annotations

import os

import pytest

from soak import workload

SECONDS = float(os.environ.get("ODRADEK_SOAK_SECONDS", 90))


@pytest.mark.slow
def test_soak_loses_nothing_and_keeps_memory_and_descriptors_flat(start_broker, tmp_path):
    broker = start_broker(**workload.BROKER_SETTINGS)
    print(f"\nsoak report: {tmp_path / 'report.md'}")
    result = workload.run_soak(broker, SECONDS, tmp_path)
    verified = result.verified

    assert result.failure_count == 0, result.failures[:10]
    assert not result.stopped_early, result.stopped_early
    assert all(result.acknowledged.values()), f"a producer had nothing acknowledged: {result.acknowledged}"
    assert verified.lost == 0, f"{verified.lost} acknowledged records lost, e.g. {verified.examples['lost']}"
    assert verified.duplicated == 0, f"{verified.duplicated} duplicated, e.g. {verified.examples['duplicated']}"
    assert verified.misplaced == 0, f"{verified.misplaced} misplaced, e.g. {verified.examples['misplaced']}"
    assert verified.corrupt == 0, f"{verified.corrupt} corrupt, e.g. {verified.examples['corrupt']}"
    assert verified.unacknowledged == 0, verified.examples["unacknowledged"]
    assert verified.read == sum(result.acknowledged.values())
    assert result.group.caught_up, "the group's committed offsets never reached the high watermarks"
    assert verified.group_missed == 0, f"the group missed {verified.group_missed}: {verified.examples['group_missed']}"
    assert result.group.members_closed >= SECONDS // workload.MEMBER_CHURN_S // 2, "members did not come and go"
    assert not result.compacted.violations, result.compacted.violations[:5]
    assert result.compacted.read < result.compacted.acknowledged, "the cleaner removed nothing"
    assert all(result.retention.log_start_offsets.values()), f"retention deleted nothing: {result.retention}"
    assert result.admin.topics_created == result.admin.topics_deleted > 0
    assert result.rss.flat, result.rss.describe()
    assert result.fds.flat, result.fds.describe()
    assert not result.broker_log_problems, "\n\n".join(result.broker_log_problems[:3])
    assert result.broker_exit_code == 0
    assert result.problems() == []
    assert (tmp_path / "soak.png").stat().st_size > 0

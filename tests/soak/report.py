"""The soak's report: `report.md` (what ran, what was checked, the samples summarised) and
`soak.png` (memory, descriptors and probe round trip over time), written side by side.

Renders a finished `SoakResult`; decides nothing itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from soak.sampler import MiB, Sample, percentile, warm_up_s

if TYPE_CHECKING:
    from soak.workload import SoakResult

REPORT_NAME = "report.md"
PLOT_NAME = "soak.png"


def write_report(result: "SoakResult", report_dir: Path) -> Path:
    """Write report.md and soak.png into `report_dir`; the path of report.md."""
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_samples(result, report_dir / PLOT_NAME)
    path = report_dir / REPORT_NAME
    path.write_text(markdown(result))
    return path


def markdown(result: "SoakResult") -> str:
    lines = [
        "# odradek soak",
        "",
        f"- started {result.started_at}, odradek {result.commit}, Python {result.python}",
        f"- workload {result.workload_s:.0f} s (asked for {result.seconds_requested:.0f} s"
        + (f"; {result.stopped_early}" if result.stopped_early else "")
        + f"), then verification; {result.total_s:.0f} s in all",
        f"- broker settings: {', '.join(f'`{k}={v}`' for k, v in result.broker_settings.items())}",
        f"- verdict: **{'pass' if not result.problems() else 'FAIL'}**",
        "",
    ]
    problems = result.problems()
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    lines += _produced_section(result) + _group_section(result) + _churn_section(result)
    lines += _samples_section(result)
    lines += [f"![RSS, descriptors and probe round trip over time]({PLOT_NAME})", ""]
    return "\n".join(lines)


def _produced_section(result: "SoakResult") -> list[str]:
    lines = [
        "## Verified topics",
        "",
        "Idempotent, acks=all, keyed records; each producer spreads its records over "
        f"{', '.join(result.verified_topics)}. At the end a fresh consumer read every verified partition "
        "from the beginning.",
        "",
        "| producer | sent | acknowledged |",
        "| --- | ---: | ---: |",
    ]
    for name, sent in result.sent.items():
        lines.append(f"| {name} | {sent:,} | {result.acknowledged[name]:,} |")
    total_sent, total_acked = sum(result.sent.values()), sum(result.acknowledged.values())
    lines += [
        f"| all | {total_sent:,} | {total_acked:,} |",
        "",
        f"- read back: {result.verified.read:,} records; lost {result.verified.lost:,}, duplicated "
        f"{result.verified.duplicated:,}, at another offset than acknowledged {result.verified.misplaced:,}, "
        f"with a wrong key or value {result.verified.corrupt:,}, present but never acknowledged "
        f"{result.verified.unacknowledged:,}",
        "",
    ]
    return lines


def _group_section(result: "SoakResult") -> list[str]:
    group = result.group
    return [
        "## Consumer group",
        "",
        f"- `{group.name}`: {group.members_started} members joined and {group.members_closed} left (one replaced "
        f"every {group.member_churn_s:.0f} s; each join and each leave is a rebalance), {group.assignments} "
        "assignments received by members",
        f"- consumed {group.consumed:,} records (redeliveries after rebalances included); acknowledged records "
        f"no member saw: {group.missed:,}",
        f"- caught up (committed offsets at the high watermarks) {group.catch_up_s:.1f} s after the producers "
        f"stopped" if group.caught_up else "- did NOT catch up",
        "",
    ]


def _churn_section(result: "SoakResult") -> list[str]:
    compacted, retention, admin = result.compacted, result.retention, result.admin
    return [
        "## Retention, compaction, admin",
        "",
        f"- `{compacted.topic}` (compact): {compacted.acknowledged:,} writes over {compacted.keys} keys "
        f"({compacted.tombstones:,} tombstones); {compacted.read:,} records left when read at the end; "
        f"keys whose last acknowledged value was not the last read: {len(compacted.violations)}",
        f"- `{retention.topic}` (delete, retention.ms={retention.retention_ms}): {retention.acknowledged:,} records "
        f"written; log start offsets at the end {retention.log_start_offsets} "
        f"(high watermarks {retention.high_watermarks})",
        f"- admin loop: {admin.calls:,} calls (list topics, describe configs, describe group, list group "
        f"offsets, create, delete), {admin.topics_created:,} topics created and {admin.topics_deleted:,} "
        f"deleted, {admin.records:,} records produced to them",
        "",
    ]


def _samples_section(result: "SoakResult") -> list[str]:
    samples = result.samples
    warm = warm_up_s(result.workload_s)
    before = [s for s in samples if s.t_s < warm]
    after = [s for s in samples if warm <= s.t_s <= result.workload_s]
    lost_probes = sum(1 for s in samples if s.probe_ms is None)
    cpu = _cpu_share(after)
    lines = [
        "## Samples",
        "",
        f"{len(samples)} samples, one a second. Warm-up: the first {warm:.0f} s. The probe round trip is the "
        "time for an ApiVersions v0 answer on a dedicated idle connection, measured by a separate process: "
        "the broker answers it from its event loop, so it shows the loop's lag from outside, not the "
        f"latency of real requests. Probes unanswered within 10 s: {lost_probes}.",
        "",
        "| metric | phase | p50 | p99 | max |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    metrics: list[tuple[str, Callable[[Sample], float | None], str]] = [
        ("RSS (MiB)", lambda s: s.rss_bytes / MiB, "{:.1f}"),
        ("open descriptors", lambda s: s.fds, "{:.0f}"),
        ("threads", lambda s: s.threads, "{:.0f}"),
        ("probe round trip (ms)", lambda s: s.probe_ms, "{:.2f}"),
    ]
    for name, value, fmt in metrics:
        for phase, phase_samples in (("warm-up", before), ("after warm-up", after)):
            values = [v for v in map(value, phase_samples) if v is not None]
            cells = [fmt.format(percentile(values, q)) for q in (0.5, 0.99, 1.0)]
            lines.append(f"| {name} | {phase} | {' | '.join(cells)} |")
    lines += [
        "",
        f"- broker CPU after warm-up: {cpu:.0%} of one core" if cpu is not None else "- broker CPU: unknown",
        f"- {result.rss.describe()}; a steady leak faster than {result.rss.detectable_per_hour / MiB:,.0f} MiB/h "
        "would have exceeded that",
        f"- {result.fds.describe()}; a leak faster than {result.fds.detectable_per_hour:,.0f} descriptors/h would "
        "have exceeded that",
        "- flatness rule: the maximum of the last third after warm-up may exceed the maximum of the first third "
        f"by {result.rss_slack[0]:.0%} + {result.rss_slack[1] / MiB:.0f} MiB (RSS) and "
        f"{result.fds_slack[0]:.0%} + {result.fds_slack[1]:.0f} (descriptors); see `judge_flatness` in "
        "tests/soak/sampler.py",
        f"- broker log (broker.log): {len(result.broker_log_problems)} Traceback/ERROR lines, "
        f"{result.broker_log_warnings} WARNING lines; exit code on SIGTERM {result.broker_exit_code}",
        f"- client errors reported and retried by the clients (not failures): {sum(result.client_errors.values())}"
        + "".join(f"\n  - {count} x {error}" for error, count in sorted(result.client_errors.items(), key=lambda e: -e[1])[:10]),
        "",
    ]
    return lines


def _cpu_share(samples: Sequence[Sample]) -> float | None:
    if len(samples) < 2 or samples[-1].t_s <= samples[0].t_s:
        return None
    return (samples[-1].cpu_s - samples[0].cpu_s) / (samples[-1].t_s - samples[0].t_s)


def plot_samples(result: "SoakResult", path: Path) -> None:
    """Three stacked plots sharing the time axis: RSS, descriptors, probe round trip.

    The warm-up is shaded grey, the two windows the flatness rule compares are shaded blue,
    the allowed maximum is a dashed red line, and the end of the workload a dotted line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result.samples
    minutes = result.total_s > 1200
    scale, unit = (60.0, "min") if minutes else (1.0, "s")
    t = [s.t_s / scale for s in samples]
    warm = warm_up_s(result.workload_s) / scale
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 9), constrained_layout=True)
    fig.suptitle(f"odradek soak {result.started_at}: {result.workload_s / scale:.0f} {unit} of mixed workload")
    series = [
        (axes[0], [s.rss_bytes / MiB for s in samples], "RSS (MiB)", result.rss, MiB),
        (axes[1], [s.fds for s in samples], "open descriptors", result.fds, 1.0),
        (axes[2], [s.probe_ms for s in samples], "probe round trip (ms)", None, 1.0),
    ]
    for axis, values, label, flatness, divisor in series:
        points = [(x, y) for x, y in zip(t, values) if y is not None]
        axis.plot([p[0] for p in points], [p[1] for p in points], linewidth=0.8, color="tab:blue")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.axvspan(0, warm, color="grey", alpha=0.15, label="warm-up (not judged)")
        axis.axvline(result.workload_s / scale, color="black", linestyle=":", label="workload stopped")
        if flatness is not None:
            for window in (flatness.first_window, flatness.last_window):
                axis.axvspan(window[0] / scale, window[1] / scale, color="tab:blue", alpha=0.08)
            axis.axhline(flatness.allowed_max / divisor, color="tab:red", linestyle="--", linewidth=0.8,
                         label="allowed max in the last third")
            axis.set_ylim(bottom=0, top=max(max(v for _, v in points), flatness.allowed_max / divisor) * 1.1)
    axes[2].set_yscale("log")
    axes[0].legend(loc="lower right", fontsize="small")
    axes[2].set_xlabel(f"time since the workload started ({unit}); blue: the windows the flatness rule compares")
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The schedule policy: what a timer firing does (full, incremental, skip, catch-up) and schedule vs RPO."""
import datetime as dt

import pytest
from ragbackup.controller.policy.plan import History
from ragbackup.controller.policy.schedule import (Objectives, RunningJob, Schedule, plan_scheduled, rpo_exposure,
                                                  rpo_findings)
from ragbackup.schedule import parse_span, span_text

NOW = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.timezone.utc)
H = dt.timedelta(hours=1)
ALL = ["chroma", "redis", "docs"]


def snap(hours_ago: float, kind: str, *comps: str) -> History:
    t = NOW - dt.timedelta(hours=hours_ago)
    return History(f"s-{hours_ago}-{kind}", t, kind, {c: f"cap-{c}" for c in (comps or ALL)})


CASES = [
    # (name, history, running, schedule, expected full, expected incremental, expected skipped components)
    ("first run: everything full", [], [], Schedule(), ALL, [], []),
    ("daily full due at 02:00", [snap(24, "full"), snap(2, "incremental")], [], Schedule(), ALL, [], []),
    ("full due within tolerance (yesterday's ran late)", [snap(23.5, "full")], [], Schedule(), ALL, [], []),
    ("06:00 firing: incremental", [snap(4, "full")], [], Schedule(), [], ALL, []),
    ("per component: a component added later gets its full",
     [snap(4, "full", "chroma", "redis")], [], Schedule(), ["docs"], ["chroma", "redis"], []),
    ("backed up within min_gap: skipped", [snap(4, "full"), snap(0.1, "incremental")], [], Schedule(), [], [], ALL),
    ("min_gap 0: always incremental", [snap(4, "full"), snap(0.1, "incremental")], [],
     Schedule(min_gap=dt.timedelta(0)), [], ALL, []),
    ("a running backup of all holds every component", [snap(4, "full")], [RunningJob(7, "backup", ())],
     Schedule(), [], [], ALL),
    ("a running restore of one component holds only it", [snap(4, "full")], [RunningJob(8, "restore", ("redis",))],
     Schedule(), [], ["chroma", "docs"], ["redis"]),
    ("a running verify holds nothing", [snap(4, "full")], [RunningJob(9, "verify", ())], Schedule(), [], ALL, []),
    ("imports are not backups", [snap(1, "import"), snap(4, "full")], [], Schedule(), [], ALL, []),
    ("a config snapshot is no full", [snap(3, "config", "docs"), snap(5, "full", "chroma", "redis")], [],
     Schedule(), ["docs"], ["chroma", "redis"], []),
    ("schedule limited to some components", [snap(4, "full")], [], Schedule(components=("redis",)), [], ["redis"],
     []),
    ("catch up after 3 days down: one full", [snap(72, "full")], [], Schedule(), ALL, [], []),
]


@pytest.mark.parametrize("name,history,running,schedule,full,incr,skipped", CASES, ids=[c[0] for c in CASES])
def test_plan_scheduled(name, history, running, schedule, full, incr, skipped):
    d = plan_scheduled(schedule, history, running, NOW, ALL)
    assert list(d.full) == full
    assert list(d.incremental) == incr
    assert [s.component for s in d.skipped] == skipped
    assert d.idle == (not full and not incr)


def test_catch_up_names_the_missed_runs():
    d = plan_scheduled(Schedule(), [snap(20, "full")], [], NOW, ["docs"])
    assert d.incremental == ("docs",)
    assert d.notes == ("catching up docs: 2 scheduled run(s) missed, last backup 20.0 h ago",)
    assert plan_scheduled(Schedule(), [snap(6, "full")], [], NOW, ["docs"]).notes == ()


def test_skip_reason_names_the_running_job():
    d = plan_scheduled(Schedule(), [], [RunningJob(12, "backup", ("docs",))], NOW, ["docs"])
    assert d.skipped[0].reason == "backup job 12 is running"
    assert "docs skipped (backup job 12 is running)" in d.summary()


RPO = [
    # (incremental_every, full_every, rpo, meets)
    ("6h", "24h", "4h", False),  # the runbook's own schedule
    ("4h", "24h", "4h", True),
    ("1h", "24h", "4h", True),
    ("24h", "24h", "1d", True),
    ("12h", "6h", "6h", True),  # the shorter cadence counts
    ("8h", "8h", "4h", False),
]


@pytest.mark.parametrize("incr,full,rpo,meets", RPO)
def test_schedule_vs_rpo(incr, full, rpo, meets):
    s = Schedule(full_every=parse_span(full), incremental_every=parse_span(incr))
    findings = rpo_findings(s, Objectives(rpo=parse_span(rpo)))
    assert (findings == []) == meets
    if not meets:
        assert f"cannot meet the RPO of {span_text(parse_span(rpo))}" in findings[0]


def test_default_schedule_cannot_meet_default_rpo():
    (finding,) = rpo_findings(Schedule(), Objectives())
    assert "RPO of 4h" in finding and "backups every 6h" in finding


def test_rpo_exposure():
    assert rpo_exposure([], NOW, Objectives()) == (False, "no backup yet (RPO 4h)")
    assert rpo_exposure([snap(3, "full")], NOW, Objectives())[0] is True
    assert rpo_exposure([snap(5, "full")], NOW, Objectives()) == (False, "newest backup 5.0 h old (RPO 4h)")
    assert rpo_exposure([snap(1, "import"), snap(5, "full")], NOW, Objectives())[0] is False


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400), (" 2 h ", 7200),
                                          ("6", None), ("1w", None), ("-1h", None), ("", None)])
def test_parse_span(text, seconds):
    span = parse_span(text)
    assert (span.total_seconds() if span is not None else None) == seconds

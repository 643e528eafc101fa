"""`ragctl health` reports each offsite tier: reachable or not, its replication queue and last replication.

In: a LocalStack with one [tiers.s3] on a real SeaweedFS (fixtures.s3tiers own_weed, stopped by
PID at the end) that the test stops (SIGSTOP, then SIGKILL) by PID and starts again. Out: with the tier up, exit 0 and the
tier's row; with it frozen or down, exit 10 (unhealthy, README's exit codes), the verdict "degraded", a message
naming the endpoint, the snapshot waiting in the queue; with it back, healthy again after the catch-up.
"""
from __future__ import annotations

import json
import time

from ragbackup.localstack import LocalStack

from fixtures.s3tiers import tier_toml
from fixtures.stack import backup, build_tree, ragctl_output

FAST = {"connect_timeout": 1, "read_timeout": 2, "max_attempts": 2}



def _health(st: LocalStack) -> tuple[int, dict, str]:
    cp = st.ragctl("health", "--json", check=False, timeout=120)
    assert cp.returncode in (0, 10), ragctl_output(cp)
    human = st.ragctl("health", check=False, timeout=120)
    return cp.returncode, json.loads(cp.stdout), human.stdout


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s")


def _schedule_ok(st: LocalStack) -> None:
    st.extra_toml += '[schedule]\nincremental_every = "4h"\n'  # the default 6 h misses the 4 h RPO: unhealthy
    st.extra_toml += "[alerts]\nmin_free_ratio = 0.001\n"  # this host's own disk, below 10% free, is not the tier's health


def test_health_reports_a_tier_down_as_degraded_and_up_again(tmp_path, own_weed):
    data = str(tmp_path / "data")
    build_tree(data, n_files=40, big_files=1)
    work = tmp_path / "stack"
    st = LocalStack(str(work))
    st.extra_toml = tier_toml(work, {"s3": dict(FAST)}, {"s3": own_weed})
    _schedule_ok(st)
    st.add_paths_component("data", data)
    with st:
        st.ragctl("init")
        backup(st)
        _wait(lambda: _health(st)[1]["tiers"][0]["last_done"] != "", 90, "the first replication")
        code, rep, human = _health(st)
        checks = {c["check"]: c for c in rep["checks"]}
        assert code == 0 and rep["status"] == "healthy", rep
        row = rep["tiers"][0]
        assert row["tier"] == "s3" and row["reachable"] and row["queue_depth"] == 0 and row["last_done"], row
        assert checks["tier s3"]["ok"] and "last replicated" in checks["tier s3"]["detail"]
        assert "tier s3" in human and human.strip().endswith("healthy")

        own_weed.pause()  # SIGSTOP by PID: the endpoint accepts connections and never answers
        try:
            began = time.monotonic()
            code, rep, _ = _health(st)
            frozen = time.monotonic() - began
        finally:
            own_weed.resume()
        print(f"\ntier frozen: ragctl health (json + table) took {frozen:.1f}s: {rep['tiers'][0]['detail']}")
        assert code == 10 and rep["status"] == "degraded" and not rep["tiers"][0]["reachable"], rep
        assert own_weed.endpoint_url in rep["tiers"][0]["detail"] and frozen < 60

        own_weed.kill()  # SIGKILL by PID (its process group): the tier's endpoint refuses connections
        try:
            sid = backup(st)["id"]  # local backups go on
            began = time.monotonic()
            code, rep, human = _health(st)
            took = time.monotonic() - began
            row, checks = rep["tiers"][0], {c["check"]: c for c in rep["checks"]}
            print(f"\ntier down: ragctl health (json + table) took {took:.1f}s: {checks['tier s3']['detail']}")
            assert code == 10, rep
            assert rep["status"] == "degraded" and not rep["healthy"], rep
            assert not row["reachable"] and own_weed.endpoint_url in row["detail"], row
            assert "UNREACHABLE" in checks["tier s3"]["detail"] and not checks["tier s3"]["ok"]
            assert all(c["ok"] for name, c in checks.items() if name != "tier s3"), checks
            assert row["queue_depth"] >= 1 and row["oldest_age_seconds"] >= 0, row
            assert "DEGRADED: an offsite tier is unreachable" in human and own_weed.endpoint_url in human
            assert took < 60
            _wait(lambda: "replication failed (2 in a row" in (work / "controller.log").read_text(), 60,
                  "a second failed try (the backoff is 10 s or more from here)")
        finally:
            own_weed.start()
        began = time.monotonic()
        _wait(lambda: _health(st)[1]["tiers"][0]["queue_depth"] == 0, 180, "the catch-up after the tier returned")
        caught_up = time.monotonic() - began
        print(f"\ntier back: queue empty {caught_up:.1f}s after the tier started")
        assert "tier s3 answers again: replication retries now" in (work / "controller.log").read_text()
        code, rep, _ = _health(st)
        assert code == 0 and rep["status"] == "healthy" and rep["tiers"][0]["reachable"], rep
        snaps = json.loads(st.ragctl("snapshots", "--tier", "s3", "--json").stdout)
        assert sid in [s["id"] for s in snaps]

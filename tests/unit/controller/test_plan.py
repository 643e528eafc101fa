"""Pure planning decisions, tested as tables."""
import datetime as dt

import pytest

from ragbackup import errors
from ragbackup.config import AppService
from ragbackup.controller.policy.diff import diff_entries
from ragbackup.controller.policy.plan import (History, RestorePlan, RestoreTarget, plan_backup, plan_restore,
                                              restore_cost, restore_steps, restore_waves)
from ragbackup.repo.tree import Entry

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
CFG = {"documents": "paths", "config": "config"}


def h(sid, hours_ago, kind, comps=("documents", "config")):
    return History(sid, NOW - dt.timedelta(hours=hours_ago), kind, {c: f"{sid}.{c}" for c in comps})


@pytest.mark.parametrize("history,mode,kind,full", [
    ([], "auto", "full", True),
    ([h("a", 30, "full")], "auto", "full", True),
    ([h("a", 10, "full")], "auto", "incremental", False),
    ([h("a", 10, "full")], "full", "full", True),
    ([], "incremental", "incremental", False),
])
def test_full_or_incremental(history, mode, kind, full):
    p = plan_backup([], CFG, mode, "", history, NOW)
    assert (p.kind, p.full) == (kind, full)


def test_parents_are_newest_holding_component():
    hist = [h("a", 10, "full"), h("b", 5, "incremental", ("config",))]
    p = plan_backup([], CFG, "incremental", "", hist, NOW)
    parents = {c.name: (c.parent_snapshot, c.parent_capture_id) for c in p.components}
    assert parents == {"documents": ("a", "a.documents"), "config": ("b", "b.config")}


def test_full_has_no_parent_cache():
    p = plan_backup([], CFG, "full", "", [h("a", 1, "full")], NOW)
    assert all(c.parent_capture_id == "" for c in p.components)


def test_config_only_kind_and_unknown_component():
    assert plan_backup(["config"], CFG, "auto", "deploy", [], NOW).kind == "config"
    with pytest.raises(errors.UsageError, match="nope"):
        plan_backup(["nope"], CFG, "auto", "", [], NOW)


def test_restore_latest_and_missing():
    hist = [h("a", 10, "full"), h("b", 5, "config", ("config",))]
    assert plan_restore("latest", ["documents"], "", hist).snapshot == "a"
    assert plan_restore("latest", [], "", hist).snapshot == "b"
    with pytest.raises(errors.NotFound):
        plan_restore("zzz", [], "", hist)
    with pytest.raises(errors.NotFound, match="documents"):
        plan_restore("b", ["documents"], "", hist)


def test_diff_walk_order():
    def e(p, **kw):
        return Entry(p, kw.pop("t", "file"), **kw)
    old = [e(b"a", t="dir"), e(b"a/x", chunks=[b"1"]), e(b"a-b"), e(b"z", mode=1)]
    new = [e(b"a", t="dir"), e(b"a/x", chunks=[b"2"]), e(b"a/y"), e(b"z", mode=2)]
    assert list(diff_entries(iter(old), iter(new))) == [
        ("M", "a/x", "content"), ("+", "a/y", ""), ("-", "a-b", ""), ("m", "z", "mode")]


def test_env_changes_names_keys_never_values():
    from ragbackup.controller.policy.diff import env_changes, is_env_file
    old = b"A=1\nB=secret-old\n# comment\nC=3\n"
    new = b"export A=1\nB=secret-new\nD=4\n"
    out = env_changes(old, new)
    assert out == "added: D; removed: C; changed: B"
    assert "secret" not in out
    assert is_env_file("deploy/.env") and is_env_file("x/prod.env") and not is_env_file("env.txt")


def test_choose_agent():
    from ragbackup.controller.restore import choose_agent
    assert choose_agent("c", "", "", ["only"]) == "only"
    assert choose_agent("c", "a", "", ["a", "b"]) == "a"
    assert choose_agent("c", "a", "b", ["a", "b"]) == "b"
    with pytest.raises(errors.UsageError, match="--agent"):
        choose_agent("c", "", "", ["a", "b"])
    with pytest.raises(errors.UsageError, match="not declared"):
        choose_agent("c", "gone", "", ["a"])


def test_restore_waves_put_databases_first_in_place_and_largest_first():
    kinds = {"docs": "paths", "cfg": "config", "vec": "chroma", "kv": "redis"}
    sizes = {"docs": 900, "cfg": 1, "vec": 500, "kv": 700}
    in_place = RestorePlan("s", ("kv", "vec", "cfg", "docs"), "")
    assert restore_waves(in_place, kinds, sizes) == [["kv", "vec"], ["docs", "cfg"]]


def test_restore_cost_counts_chunks_through_the_tree():
    """An RDB stored by record (many small chunks) restores slower than its bytes say."""
    docs = restore_cost(1_311_000_000, 3_300_000)  # 15,000 files in 3,000 chunks
    rdb = restore_cost(280_000_000, 18_300_000)  # one file in 273,000 chunks
    vec = restore_cost(959_000_000, 2_900_000)  # 43,000 pages
    kinds = {"docs": "paths", "rdb": "paths", "vec": "paths"}
    plan = RestorePlan("s", ("vec", "rdb", "docs"), "/tmp/out")
    assert restore_waves(plan, kinds, {"docs": docs, "rdb": rdb, "vec": vec}) == [["docs", "rdb", "vec"]]
    assert restore_cost(100, 0) == 100


def test_restore_waves_into_a_target_are_one_group():
    kinds = {"docs": "paths", "vec": "chroma"}
    plan = RestorePlan("s", ("vec", "docs"), "/tmp/out")
    assert restore_waves(plan, kinds, {"docs": 2, "vec": 1}) == [["docs", "vec"]]
    assert restore_waves(RestorePlan("s", ("docs",), ""), kinds, {}) == [["docs"]]


REDIS = RestoreTarget("kv", "redis", "db1", "/var/lib/redis", service="docker:rag-redis-prod", files=1)
DOCS = RestoreTarget("docs", "paths", "app1", "/srv/docs", files=12)
APP = AppService("app1", "docker:rag-api")


def test_restore_steps_in_place():
    steps = restore_steps(RestorePlan("s", ("kv", "docs"), ""), [REDIS, DOCS], (APP,))
    assert steps[0] == "stop application docker:rag-api on agent app1"
    assert steps[1].startswith("stop docker:rag-redis-prod, move kv's current data in /var/lib/redis aside")
    assert steps[2].startswith("write docs (paths, 12 files, agent app1) beside /srv/docs, move the current")
    assert steps[3] == "start application docker:rag-api on agent app1"


def test_restore_steps_into_a_target_start_and_stop_nothing():
    steps = restore_steps(RestorePlan("s", ("kv", "docs"), "/srv/check/"), [REDIS, DOCS], (APP,))
    assert steps == ("write kv (redis, 1 files, agent db1) to /srv/check/kv",
                     "write docs (paths, 12 files, agent app1) to /srv/check/docs")


@pytest.mark.parametrize("plan,comp,message", [
    (RestorePlan("s", ("kv",), ""), RestoreTarget("kv", "redis", "db1", "/var/lib/redis"),
     "component kv: an in-place redis restore must stop the database first"),
    (RestorePlan("s", ("v",), ""), RestoreTarget("v", "chroma", "db1", "/chroma", container="c1"),
     "component v: an in-place chroma restore must stop the database first"),
    (RestorePlan("s", ("d",), ""), RestoreTarget("d", "paths", "app1", ""),
     "component d has no absolute path to restore in place"),
    (RestorePlan("s", ("d",), "relative/dir"), DOCS, "--target 'relative/dir' is relative"),
])
def test_restore_steps_refuse_what_the_restore_would(plan, comp, message):
    with pytest.raises(errors.UsageError, match=message):
        restore_steps(plan, [comp])

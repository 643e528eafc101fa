"""Chroma checks: what a restore and a drill compare with the facts, and `ragctl health`'s check.

In: a ChromaTarget of a running server and the facts recorded at capture (facts.py). Out: the
differences (missing or extra collections, counts, dimensions, ids, and the probe queries'
top-k ids in order), the health check (heartbeat, and whether this agent can take facts), and a
drill's checks on a throwaway `chroma run` serving the restored persist dir.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ragbackup import errors
from ragbackup.mismatch import Mismatch
from ragbackup.v1 import agent_pb2

from ragbackup.agent.component import Component
from ragbackup.agent.drill_procs import DrillSetup, check, free_port, require_binary, serving, wait_serving
from ragbackup.agent.kinds.chroma import facts as chroma_facts
from ragbackup.agent.kinds.chroma.api import ChromaTarget, _Api, heartbeat, server_version, target_of, wait_heartbeat
from ragbackup.agent.kinds.chroma.capture import SQLITE_NAME, quick_check


def compare_collections(expected: list[Mapping[str, Any]],
                        actual: Mapping[str, Mapping[str, Any]]) -> list[Mismatch]:
    """Missing/unexpected collections and count/dimension/id differences (probes aside)."""
    out = []
    for name in sorted(set(actual) - {c["name"] for c in expected}):
        out.append(Mismatch(name, "collection", "absent", "present"))
    for want in expected:
        got = actual.get(want["name"])
        if got is None:
            out.append(Mismatch(want["name"], "collection", "present", "missing"))
            continue
        for key in ("count", "dimension", "id"):
            if want.get(key) != got.get(key):
                out.append(Mismatch(want["name"], key, str(want.get(key)), str(got.get(key))))
    return out


def compare_probe(collection: str, probe: Mapping[str, Any], ids: list[str]) -> Mismatch | None:
    """A Mismatch if the top-k ids differ (order included) from the recorded ones."""
    if list(probe["top_k"]) == list(ids):
        return None
    return Mismatch(collection, f"probe {probe['id']} top-{probe['n_results']}",
                    ", ".join(probe["top_k"]), ", ".join(ids))


def _current(api: _Api) -> dict[str, dict[str, Any]]:
    """name -> {id, count, dimension} as the running server reports now."""
    out = {}
    for col in api.collections():
        count = api.count(col["id"])
        dimension = len(api.record_at(col["id"], 0)[1]) if count else col.get("dimension")
        out[col["name"]] = {"id": col["id"], "count": count, "dimension": dimension}
    return out


def verify_facts(target: ChromaTarget, facts: Mapping[str, Any]) -> list[Mismatch]:
    """Differences between the running server and the facts; [] when it answers the same.

    Counts, dimensions and ids per collection, missing or extra collections, and the
    probe queries' top-k ids in order. HNSW search is approximate, but the same index
    files answer the same query identically, so any difference means different data.
    """
    api = _Api(target)
    now = _current(api)
    problems = compare_collections(facts["collections"], now)
    for col in facts["collections"]:
        if col["name"] not in now or now[col["name"]]["count"] == 0:
            continue
        for probe in col["probes"]:
            ids, _ = api.query(now[col["name"]]["id"], probe["embedding"], probe["n_results"])
            problem = compare_probe(col["name"], probe, ids)
            if problem:
                problems.append(problem)
    return problems


def health(comp: Component) -> tuple[bool, str]:
    """Heartbeat, and whether backups can take facts (chromadb on this host reads the server's files)."""
    target = target_of(comp)
    wait_heartbeat(target.url, 3.0)
    engine = chroma_facts.engine_version()
    reason = chroma_facts.unusable_engine(server_version(target), engine)
    facts = f"backups will record no facts: {reason}" if reason else f"facts read with chromadb {engine}"
    return True, f"heartbeat ok at {target.url}; {facts}"


# ---------------------------------------------------------------- drill


def drill(data: str, scratch: str, facts: dict, setup: DrillSetup) -> list[agent_pb2.CheckResult]:
    """quick_check of the restored SQLite, then a throwaway `chroma run` on it, compared with the facts."""
    sqlite = os.path.join(data, SQLITE_NAME)
    if not os.path.isfile(sqlite):
        return [check("chroma-quick-check", False, f"the restored data has no {SQLITE_NAME}")]
    verdict = quick_check(sqlite)
    checks = [check("chroma-quick-check", verdict == "ok", f"PRAGMA quick_check: {verdict}")]
    try:
        binary = require_binary("chroma")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [binary, "run", "--path", data, "--host", "127.0.0.1", "--port", str(port)]
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        with serving(argv, "chroma", scratch, setup, env) as proc:
            wait_serving(lambda: heartbeat(url, 1.0), proc, "chroma", scratch, setup)
            checks.append(check("chroma-start", True, f"chroma answered on {url}"))
            checks += _drill_facts(url, data, facts)
    except errors.Cancelled:
        raise
    except (errors.RagBackupError, OSError) as exc:  # named after the step it stopped
        started = any(c.name == "chroma-start" for c in checks)
        checks.append(check("chroma-counts" if started else "chroma-start", False,
                            getattr(exc, "message", None) or str(exc)))
    return checks


def _drill_facts(url: str, data: str, facts: dict) -> list[agent_pb2.CheckResult]:
    if "collections" not in facts:
        return [check("chroma-counts", True, "the snapshot has no collection facts (imported): not compared")]
    target = ChromaTarget(persist_dir=data, url=url, tenant=facts.get("tenant", "default_tenant"),
                          database=facts.get("database", "default_database"))
    problems = verify_facts(target, facts)
    probe_problems = [p.text() for p in problems if p.check.startswith("probe")]
    count_problems = [p.text() for p in problems if not p.check.startswith("probe")]
    cols = facts["collections"]
    n_probes = sum(len(c.get("probes", ())) for c in cols)
    counts = ", ".join(f"{c['name']}={c['count']}" for c in cols)
    return [check("chroma-counts", not count_problems, "; ".join(count_problems) or
                  f"{len(cols)} collections with the recorded counts ({counts})"),
            check("chroma-probes", not probe_problems, "; ".join(probe_problems) or
                  f"{n_probes} probe queries returned the recorded top-k ids")]

"""`ragctl show ID`: one snapshot's manifest (components, stats, facts).

In: a snapshot id (or `latest`). Out: the manifest as JSON (--json), or as text: a line per
component and its facts made readable (Chroma: a table of collections; Redis: keys per db).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes, table

INDENT = "    "
# Facts keys a kind's own lines already show.
_CHROMA_SHOWN = {"kind", "version", "consistency", "engine", "tenant", "database", "collections", "unverified"}
_REDIS_SHOWN = {"kind", "redis_version", "appendonly", "dbsize", "total_keys", "keyspace_at_fork"}
_COLLECTION_COLUMNS = [("name", "collection"), ("count", "count"), ("dimension", "dimension"),
                       ("space", "metric"), ("probes", "probes")]


def register(sub) -> None:
    p = sub.add_parser("show", help="show one snapshot",
                       description="Show a snapshot's manifest: components, sizes, facts.")
    p.add_argument("id", help="snapshot id or 'latest'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _rest(facts: Mapping[str, Any], shown: set[str]) -> list[str]:
    """`key: value` for facts no table shows; long values clipped."""
    return [f"{k}: {json.dumps(v)[:200]}" for k, v in sorted(facts.items()) if k not in shown]


def _probes(col: Mapping[str, Any]) -> str:
    probes = col.get("probes") or []
    return f"{len(probes)} x top-{probes[0]['n_results']}" if probes else "-"


def chroma_lines(facts: Mapping[str, Any]) -> list[str]:
    """Version, mode and a table: collection, count, dimension, metric, probes."""
    head = f"chroma {facts.get('version', '?')}, consistency {facts.get('consistency', '?')}"
    if facts.get("engine"):
        head += f", facts read by {facts['engine']} from the captured copy"
    if "collections" not in facts:
        return [head, f"facts not recorded: {facts.get('unverified', 'none in this snapshot')}"]
    rows = [{"name": c.get("name"), "count": c.get("count"), "dimension": c.get("dimension") or "-",
             "space": c.get("space") or "-", "probes": _probes(c)} for c in facts["collections"]]
    lines = [head]
    lines += table(rows, _COLLECTION_COLUMNS).splitlines() if rows else ["no collections"]
    return lines + _rest(facts, _CHROMA_SHOWN)


def redis_lines(facts: Mapping[str, Any]) -> list[str]:
    """Version, AOF, and DBSIZE per db."""
    dbsize = facts.get("dbsize") or {}
    dbs = sorted(dbsize, key=lambda d: int(d[2:]) if d[2:].isdigit() else 0)
    keys = ", ".join(f"{db} {dbsize[db]}" for db in dbs) or "none"
    aof = "on" if facts.get("appendonly") else "off"
    total = facts.get("total_keys", sum(dbsize.values()))
    return [f"redis {facts.get('redis_version', '?')}, AOF {aof}", f"keys: {keys} (total {total})"]\
        + _rest(facts, _REDIS_SHOWN)


def fact_lines(facts: Mapping[str, Any]) -> list[str]:
    """The facts of one component as readable lines (no indentation)."""
    kind = facts.get("kind")
    if kind == "chroma":
        return chroma_lines(facts)
    if kind == "redis" and "dbsize" in facts:
        return redis_lines(facts)
    return _rest(facts, {"kind"})


def run(args, client: Client) -> int:
    m = json.loads(client.call("ShowSnapshot", controller_pb2.ShowSnapshotRequest(id=args.id)).manifest_json)
    if args.json:
        emit_json(m)
        return 0
    print(f"snapshot {m['id']}  {m['time']}  {m['kind']}  reason={m['reason']}  host={m['host']}")
    for name, c in sorted(m["components"].items()):
        s = c["stats"]
        print(f"  {name} ({c['kind']} on agent {c.get('agent') or '-'}, {c.get('path') or '-'}): {s.get('files', 0)} files, "
              f"{s.get('dirs', 0)} dirs, {human_bytes(s.get('bytes_total', 0))}")
        for line in fact_lines(c.get("facts") or {}):
            print(INDENT + line)
    return 0

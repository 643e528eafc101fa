"""`ragctl show` renders facts readably: Chroma as a table of collections, Redis as keys per db."""
from __future__ import annotations

from ragbackup.cli.show import fact_lines


def probe(n: int = 5) -> dict:
    return {"id": "a", "embedding": [0.5] * 300, "n_results": n, "top_k": ["a"] * n, "distances": [0.0] * n}


CHROMA = {"kind": "chroma", "version": "1.0.0", "consistency": "pause", "engine": "chromadb 1.5.9",
          "tenant": "default_tenant", "database": "default_database",
          "collections": [
              {"name": "docs", "id": "x", "count": 300, "dimension": 32, "space": "cosine",
               "metadata": {"hnsw:space": "cosine"}, "probes": [probe(), probe(), probe()]},
              {"name": "empty", "id": "y", "count": 0, "dimension": None, "space": "ip", "metadata": {},
               "probes": []}]}


def test_chroma_facts_are_a_table():
    lines = fact_lines(CHROMA)
    assert lines[0] == "chroma 1.0.0, consistency pause, facts read by chromadb 1.5.9 from the captured copy"
    assert lines[1].split() == ["collection", "count", "dimension", "metric", "probes"]
    assert lines[2].split() == ["docs", "300", "32", "cosine", "3", "x", "top-5"]
    assert lines[3].split() == ["empty", "0", "-", "ip", "-"]
    assert len(lines) == 4, lines
    assert not any("0.5" in line for line in lines), "probe vectors are not printed"


def test_chroma_facts_not_recorded_say_why():
    facts = {"kind": "chroma", "version": "1.0.0", "consistency": "online",
             "unverified": "the chromadb package is not installed on the agent host"}
    assert fact_lines(facts)[1] == "facts not recorded: the chromadb package is not installed on the agent host"


def test_redis_facts_show_keys_per_db():
    facts = {"kind": "redis", "redis_version": "7.2.4", "appendonly": True, "appenddirname": "appendonlydir",
             "appendfilename": "appendonly.aof", "dbfilename": "dump.rdb", "dbsize": {"db10": 1, "db0": 1200, "db2": 5},
             "total_keys": 1206, "keyspace_at_fork": True}
    lines = fact_lines(facts)
    assert lines[:2] == ["redis 7.2.4, AOF on", "keys: db0 1200, db2 5, db10 1 (total 1206)"]
    assert 'dbfilename: "dump.rdb"' in lines


def test_other_facts_as_key_value():
    assert fact_lines({"kind": "paths"}) == []
    assert fact_lines({"kind": "config", "documents": 12}) == ["documents: 12"]

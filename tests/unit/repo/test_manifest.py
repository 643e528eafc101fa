"""The typed manifest: stored JSON round-trips unchanged, derived numbers and the summary."""
from __future__ import annotations

from ragbackup.repo.manifest import ComponentManifest, Manifest
from ragbackup.repo.snapshots import totals, tree_ids

STORED = {
    "version": 1, "id": "rag-system-backup-20260102_030405", "time": "2026-01-02T03:04:05Z", "duration_s": 1.5,
    "kind": "full", "reason": "manual", "host": "h", "user": "alice@unix:",
    "components": {
        "docs": {"kind": "paths", "agent": "local", "path": "/srv/docs", "capture_id": "x.docs", "parent": "",
                 "tree": ["aa" * 32], "stats": {"files": 3, "bytes_total": 300, "bytes_read": 300, "bytes_sent": 120},
                 "facts": {}},
        "redis": {"kind": "redis", "agent": "local", "path": "", "capture_id": "x.redis", "parent": "p",
                  "tree": ["bb" * 32, "cc" * 32], "stats": {"files": 1, "bytes_total": 50}, "facts": {"keys": 7}},
    },
    "stats": {"bytes_total": 350, "bytes_read": 300, "bytes_sent": 120, "blobs_new": 4, "bytes_new_raw": 200,
              "bytes_stored": 90, "packs": 1},
}
IMPORTED = {**STORED, "kind": "import", "source": {"filename": "x.tar.gz", "bytes": 10},
            "components": {"docs": {**STORED["components"]["docs"], "source": {"archive": "a", "root": "."}}}}


def test_stored_manifests_round_trip_unchanged():
    for d in (STORED, IMPORTED):
        assert Manifest.from_dict(d).to_dict() == d


def test_derived_numbers():
    m = Manifest.from_dict(STORED)
    assert m.totals() == {"files": 4, "bytes_total": 350, "bytes_added": 90} == totals(STORED)
    assert m.tree_ids() == [b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32] == tree_ids(STORED)
    assert m.captures() == {"docs": "x.docs", "redis": "x.redis"}
    assert m.kinds() == {"docs": "paths", "redis": "redis"}
    assert m.components["docs"].bytes_sent == 120 and m.components["redis"].bytes_read == 0


def test_summary_leaves_out_trees_only():
    s = Manifest.from_dict(IMPORTED).summary()
    assert "tree" not in s["components"]["docs"] and s["components"]["docs"]["source"] == {"archive": "a", "root": "."}
    assert {k: v for k, v in s.items() if k != "components"} == {k: v for k, v in IMPORTED.items() if k != "components"}


def test_a_component_built_in_code_matches_its_stored_form():
    c = ComponentManifest(kind="paths", tree=("aa",), stats={"files": 1})
    assert ComponentManifest.from_dict(c.to_dict()) == c

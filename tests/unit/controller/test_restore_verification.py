"""The restore job's verdict over the agents' mismatch rows: a readable, bounded VerificationFailed."""
from __future__ import annotations

from ragbackup import errors
from ragbackup.controller.restore import verification_failed
from ragbackup.v1 import agent_pb2


def result(mismatches: list[dict]) -> dict:
    return {"files": 1, "mismatches": mismatches}


def test_no_mismatch_no_error():
    assert verification_failed({"chroma": result([]), "docs": result([])}) is None


def test_rows_from_every_component():
    err = verification_failed({
        "chroma": result([{"collection": "docs", "check": "count", "expected": "300", "found": "281"}]),
        "redis": result([{"collection": "db0", "check": "DBSIZE", "expected": "5", "found": "4"}]),
        "docs": result([])})
    assert isinstance(err, errors.VerificationFailed) and err.exit_code == 11
    lines = err.message.splitlines()
    assert lines[0] == "restored data differs from the snapshot's facts (2 difference(s)):"
    assert [line.split() for line in lines[1:]] == [
        ["component", "collection", "check", "expected", "found"],
        ["chroma", "docs", "count", "300", "281"],
        ["redis", "db0", "DBSIZE", "5", "4"]]
    assert err.to_dict() == {
        "kind": "VerificationFailed", "message": err.message, "exit_code": 11, "mismatch_count": 2,
        "mismatches": [
            {"component": "chroma", "collection": "docs", "check": "count", "expected": "300", "found": "281"},
            {"component": "redis", "collection": "db0", "check": "DBSIZE", "expected": "5", "found": "4"}]}


def test_text_only_agents_still_fail_the_restore():
    from ragbackup.controller.restore import _mismatches
    rows = _mismatches(agent_pb2.RestoreResult(mismatches=["collection 'docs': count 1, expected 2"]))
    assert rows == [{"collection": "", "check": "collection 'docs': count 1, expected 2", "expected": "",
                     "found": ""}]
    assert verification_failed({"chroma": result(rows)}) is not None

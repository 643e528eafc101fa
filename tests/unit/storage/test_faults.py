"""FaultyStorage (core/storage/faults.py): rules by operation, key prefix and call number, read again when the file changes."""
from __future__ import annotations

import json
import os

import pytest
from ragbackup import errors
from ragbackup.storage import LocalSettings, LocalStorage, open_storage
from ragbackup.storage.faults import FAULTS_ENV, FaultyStorage, parse_rules


def _faulty(tmp_path, rules: list[dict]) -> tuple[FaultyStorage, str]:
    path = str(tmp_path / "rules.json")
    with open(path, "w") as f:
        json.dump(rules, f)
    return FaultyStorage(LocalStorage(str(tmp_path / "repo")), path), path


def test_not_wrapped_unless_the_variable_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv(FAULTS_ENV, raising=False)
    assert type(open_storage(LocalSettings(str(tmp_path / "a")))) is LocalStorage
    monkeypatch.setenv(FAULTS_ENV, str(tmp_path / "rules.json"))
    assert isinstance(open_storage(LocalSettings(str(tmp_path / "b"))), FaultyStorage)


def test_enospc_on_the_nth_write_under_a_prefix(tmp_path):
    s, path = _faulty(tmp_path, [{"ops": ["write"], "prefix": "data/", "after": 1, "times": 1, "fault": "enospc"}])
    s.put("index/x", b"not counted")
    s.put("data/a", b"1")
    with pytest.raises(errors.RepositoryNoSpace, match="ENOSPC"):
        s.put("data/b", b"2")
    s.put("data/c", b"3")
    assert not s.exists("data/b") and s.get("data/c") == b"3"
    with open(path + ".hits") as f:
        assert f.read() == "put data/b enospc\n"


def test_transient_and_permanent_errors_and_short_reads(tmp_path):
    s, path = _faulty(tmp_path, [])
    s.put("data/a", b"0123456789")
    with open(path, "w") as f:
        json.dump([{"ops": ["get"], "times": 1, "fault": "error"},
                   {"ops": ["get_range"], "times": 1, "fault": "short_read"},
                   {"ops": ["delete"], "fault": "fatal"}], f)
    os.utime(path, ns=(1, 1))  # a new stamp: the rules are read again
    with pytest.raises(errors.StorageUnavailable):
        s.get("data/a")
    assert s.get("data/a") == b"0123456789"
    assert s.get_range("data/a", 2, 6) == b"234"
    with pytest.raises(errors.RepositoryError):
        s.delete("data/a")


def test_adopt_file_is_faulted_as_a_write_and_absent_capabilities_stay_absent(tmp_path):
    s, _ = _faulty(tmp_path, [{"ops": ["write"], "fault": "error"}])
    staged = tmp_path / "staged"
    staged.write_bytes(b"pack")
    with pytest.raises(errors.StorageUnavailable):
        s.adopt_file("data/p", str(staged))
    assert getattr(s, "create_bucket_if_missing", None) is None


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="fault 'boom'"):
        parse_rules('[{"fault": "boom"}]')

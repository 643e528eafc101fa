"""`ragctl demo --workdir`: which dirs are used, reused or refused, and what cleanup may delete.

In: decide() over a table of dir states; Workdir on real tmp dirs. Out: a foreign non-empty dir is
refused (exit 2) unless --force, --force never replaces a name the demo did not create, and only the
demo's own entries (and a dir it created, once empty) are ever removed.
"""
from __future__ import annotations

import json
import os

import pytest
from ragbackup import errors
from ragbackup.cli import demo_workdir as dw


@pytest.mark.parametrize("exists,names,marker,force,want", [
    (False, [], None, False, dw.Decision("create", True)),
    (True, [], None, False, dw.Decision("use", False)),
    (True, [dw.MARKER, "data"], {"created_dir": True}, False, dw.Decision("reuse", True)),
    (True, [dw.MARKER, "data"], {"created_dir": False}, False, dw.Decision("reuse", False)),
    (True, ["notes.txt"], None, True, dw.Decision("use", False)),
])
def test_decide(exists, names, marker, force, want):
    assert dw.decide(exists, names, marker, force, "/x") == want


@pytest.mark.parametrize("names,force,message", [
    (["notes.txt"], False, "is not a previous demo's work dir"),
    (["notes.txt", "data"], True, "already holds data, which the demo did not create"),
])
def test_decide_refuses(names, force, message):
    with pytest.raises(errors.UsageError) as exc:
        dw.decide(True, names, None, force, "/x")
    assert message in exc.value.message and exc.value.exit_code == 2


def test_foreign_dir_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(errors.UsageError):
        dw.Workdir(str(tmp_path)).prepare()
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_forced_dir_keeps_what_was_there(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    wd = dw.Workdir(str(tmp_path), force=True)
    assert wd.prepare().action == "use"
    os.makedirs(wd.sub("data"))
    (tmp_path / "data" / "f").write_text("demo")
    wd.cleanup()
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_previous_demo_dir_is_cleared_of_its_entries_only(tmp_path):
    wd = dw.Workdir(str(tmp_path / "demo"))
    assert wd.prepare() == dw.Decision("create", True)
    for name in ("data", "stack"):
        os.makedirs(wd.sub(name))
        (tmp_path / "demo" / name / "f").write_text("old run")
    (tmp_path / "demo" / "notes.txt").write_text("the user's")

    again = dw.Workdir(str(tmp_path / "demo"))
    assert again.prepare() == dw.Decision("reuse", True)
    assert sorted(os.listdir(tmp_path / "demo")) == [dw.MARKER, "notes.txt"]
    again.cleanup()
    assert sorted(os.listdir(tmp_path / "demo")) == ["notes.txt"], "a dir with the user's file stays"


def test_a_dir_the_demo_created_is_removed_at_cleanup(tmp_path):
    wd = dw.Workdir(str(tmp_path / "demo"))
    wd.prepare()
    assert json.loads((tmp_path / "demo" / dw.MARKER).read_text())["created_dir"] is True
    os.makedirs(wd.sub("restored"))
    wd.cleanup()
    assert not (tmp_path / "demo").exists()


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(errors.UsageError):
        dw.Workdir(str(tmp_path / "f")).prepare()

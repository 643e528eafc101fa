"""Compression dictionaries end to end: the agent trains one from a SQLite database on the
first backup, the controller stores it, later backups reuse it, restores are byte-exact,
and verify names a damaged dictionary."""
from __future__ import annotations

import json
import os

from fixtures.sqlite_db import make_db, update_rows
from fixtures.stack import assert_same_tree, backup, build_tree, ragctl_output, tree_state


def _dicts(st) -> list[str]:
    path = os.path.join(st.repo_dir, "dicts")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_dictionary_is_trained_once_and_snapshots_restore_byte_exact(make_stack, tmp_path):
    data = tmp_path / "data"
    build_tree(str(data), n_files=200, big_files=0)
    make_db(str(data / "store.sqlite3"))
    st = make_stack({"data": str(data)})
    before = tree_state(str(data))
    first = backup(st)
    assert len(_dicts(st)) == 1, _dicts(st)
    trained = _dicts(st)

    assert update_rows(str(data / "store.sqlite3")) > 100
    after = tree_state(str(data))
    second = backup(st)
    assert _dicts(st) == trained  # reused, not trained again
    assert second["components"]["data"]["stats"]["bytes_sent"] > 0, second

    for sid, expected, name in ((first["id"], before, "r1"), (second["id"], after, "r2")):
        target = str(tmp_path / name)
        st.ragctl("restore", sid, "--target", target)
        assert_same_tree(expected, os.path.join(target, "data"), f"restore of {sid}")
    cp = st.ragctl("verify", "--read-data", check=False)
    assert cp.returncode == 0, ragctl_output(cp)


def test_damaged_dictionary_is_named_by_verify(make_stack, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_db(str(data / "store.sqlite3"))
    st = make_stack({"data": str(data)})
    backup(st)
    (name,) = _dicts(st)
    path = os.path.join(st.repo_dir, "dicts", name)
    blob = bytearray(open(path, "rb").read())
    blob[len(blob) // 2] ^= 1
    with open(path, "wb") as f:
        f.write(blob)
    cp = st.ragctl("verify", check=False)
    assert cp.returncode == 6, ragctl_output(cp)
    assert f"dicts/{name} failed authentication" in cp.stdout + cp.stderr, ragctl_output(cp)
    report = json.loads(st.ragctl("verify", "--json", check=False).stdout)
    assert f"dicts/{name}" in report["damaged_dictionaries"], report

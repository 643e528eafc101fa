"""Hostile input: snapshot ids, paths and options given to ragctl (cli/), parsed and resolved."""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os

from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz

from ragbackup import errors
from ragbackup.cli import import_, main
from ragbackup.controller.policy.plan import History, plan_restore, resolve_snapshot
from ragbackup.controller.runbook_import import MAP_KEY, SIZE_KEY, parse_mapping, upload_request
from ragbackup.repo.snapshots import is_snapshot_id, sort_key

SID = "rag-system-backup-20260102_030405"
HISTORY = [History(SID, dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "full", {"docs": "c1", "db": "c2"})]
HOSTILE = ["latest", SID, SID + "\n", SID + "-2", SID + "/../x", "../../etc/passwd", "/etc/passwd", "", "-", "--",
           ".", "..", "x" * 5000, "rag-system-backup-", "é", "\u202e", "a,b,,c", ",", "=", "a=b=c", ".env.backup=",
           "chromadb=../x", "--target", "-o", "/", "rel/dir", "docs", "db,docs", "9" * 5000, "-1", "1e999",
           SID.replace("_", "\x00")]
VERBS = ["show", "restore", "forget", "diff", "export", "import", "verify", "drill", "snapshots", "backup",
         "jobs", "status", "health", "prune", "repair", "catalog", "config", "init", "nope"]
FLAGS = ["--components", "--target", "--agent", "--dry-run", "--force", "--json", "--map", "--reason", "-o",
         "--output", "--socket", "--config", "-v", "--help"]
ARGV = st.tuples(st.lists(st.sampled_from(FLAGS[-4:-1]), max_size=2), st.sampled_from(VERBS),
                 st.lists(st.one_of(st.sampled_from(HOSTILE), st.sampled_from(FLAGS), st.text(max_size=12)),
                          max_size=6)).map(lambda t: [*t[0], t[1], *t[2]])


PARSER = main.parser()  # what `ragctl` builds at each start; parse_args leaves it unchanged


def _parse(argv: list[str]):
    """ragctl's parse_args: a Namespace, or the exit code argparse chose (usage errors exit 2)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return PARSER.parse_args(argv)
        except SystemExit as exc:
            return exc.code


def _resolve(args) -> None:
    """What the controller does with the ids, components, target and mapping the command sent."""
    for ref in [getattr(args, "id", None), getattr(args, "id1", None), getattr(args, "id2", None),
                *(getattr(args, "ids", None) or [])]:
        if ref is None:
            continue
        is_snapshot_id(ref), sort_key(ref)
        comps = [c for c in (getattr(args, "components", "") or "").split(",") if c]
        expect_typed(lambda: resolve_snapshot(ref, HISTORY, []), errors.NotFound)
        expect_typed(lambda: plan_restore(ref, comps, getattr(args, "target", ""), HISTORY), errors.NotFound)
    if getattr(args, "verb", "") == "import":
        mapping = expect_typed(lambda: import_._mapping(args.map), errors.UsageError)
        if mapping is not None:
            expect_typed(lambda: parse_mapping(mapping), errors.UsageError)
            req = upload_request(args.file, args.reason, {SIZE_KEY: args.reason, MAP_KEY: mapping}, "fuzz")
            assert "/" not in req.filename and req.size_hint >= 0


def test_hostile_ragctl_arguments_are_usage_errors_or_typed_refusals(record_property):
    """ragctl given hostile snapshot ids, paths and options: exit 2 (usage) or a typed refusal, never a traceback"""
    def check(argv):
        args = _parse(argv)
        if isinstance(args, int) or args is None:
            assert args in (0, 2, None)  # --help / --version exit 0
            return
        _resolve(args)
    record_property("tries", fuzz(check, ARGV))


def test_snapshot_ids_with_a_trailing_newline_are_not_ids():
    """A snapshot id followed by a newline is not a snapshot id (`$` matched before it)."""
    assert is_snapshot_id(SID) and is_snapshot_id(SID + "-2")
    assert not is_snapshot_id(SID + "\n") and sort_key(SID + "\n") == (SID + "\n", 0)


def _sample(out: str) -> list[list[str]]:
    return [["show", "../../etc/passwd"], ["show", SID + "/../x"], ["show", " "], ["show", "x" * 5000],
            ["restore", "../../etc/passwd", "--target", f"{out}/t"], ["restore", "latest\n", "--target", f"{out}/t"],
            ["restore", "latest", "--components", "../docs", "--target", f"{out}/t"],
            ["restore", "latest", "--components", "nope,,", "--target", f"{out}/t"],
            ["diff", "latest", "/etc/passwd"], ["forget", "../x", "latest\n"],
            ["export", "../../x", "-o", f"{out}/x.tar.gz"], ["verify", "--nope"],
            ["import", f"{out}/missing.tar.gz", "--map", "a=b=c"], ["import", f"{out}/missing.tar.gz", "--map", "="],
            ["show", "\u202e" + SID], ["nope"]]


def test_ragctl_as_a_process_refuses_hostile_ids_and_paths_with_exit_codes(record_property, make_stack, tmp_path):
    """ragctl as a process, given hostile snapshot ids and paths: a one-line error and a documented exit code"""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a\n")
    stack = make_stack({"docs": str(docs)})
    stack.ragctl("backup", "--json")
    before = sorted(os.listdir(tmp_path))
    codes = {}
    sample = _sample(str(tmp_path / "out"))
    for argv in sample:
        cp = stack.ragctl(*argv, check=False, timeout=120)
        codes[" ".join(a[:40] for a in argv)] = cp.returncode
        assert "Traceback" not in cp.stderr and cp.returncode in (2, 5, 9), (argv, cp.stderr[-2000:])
        assert cp.stderr.startswith(("ragctl: error:", "usage:")), (argv, cp.stderr[-500:])
    assert sorted(os.listdir(tmp_path)) == before  # no restore, export or import wrote anything
    assert json.loads(stack.ragctl("snapshots", "--json").stdout)  # the snapshot is still there
    record_property("tries", len(sample))
    record_property("detail", json.dumps(codes))

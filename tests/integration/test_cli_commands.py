"""Every ragctl command, in text and --json mode, against one running stack (real daemons).

Each case states the exit code the README documents for it; every run must print no
Python traceback, and --json output that exits 0 must parse as JSON. To cover a new
command, add a Case to CASES (and a setup step to `stack` when it needs one).
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

import pytest
from fixtures.stack import running_stack
from ragbackup.errors import NotFound, RepositoryExists, UsageError


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]  # {tmp}, {first}, {export} and {mode} are filled in
    exit: int | tuple[int, ...] = 0
    json: bool = True  # the command takes --json

    @property
    def id(self) -> str:
        return " ".join(self.argv).replace("{", "").replace("}", "")


CASES = [
    Case(("init",), RepositoryExists.exit_code, json=False),  # created by the fixture already
    Case(("backup", "--components", "documents", "--reason", "cli-{mode}")),
    Case(("backup", "--components", "no-such-component"), UsageError.exit_code),
    Case(("snapshots",)),
    Case(("show", "latest")),
    Case(("show", "no-such-snapshot"), NotFound.exit_code),
    Case(("restore", "latest", "--target", "{tmp}/restored-{mode}")),
    Case(("restore", "{first}", "--dry-run")),
    Case(("restore", "{first}", "--target", "{tmp}/dry-{mode}", "--dry-run")),
    Case(("restore", "no-such-snapshot"), NotFound.exit_code),
    Case(("verify",)),
    Case(("verify", "--read-data")),
    Case(("drill", "latest")),
    Case(("drill", "{first}", "--from", "local")),
    Case(("drill", "no-such-snapshot"), NotFound.exit_code),
    Case(("drill", "latest", "--from", "s3"), UsageError.exit_code),
    Case(("diff", "{first}", "latest")),
    Case(("export", "{first}", "-o", "{tmp}/export-{mode}.tar.gz")),
    Case(("export", "{first}", "-o", "{tmp}/no-such-dir/export-{mode}.tar.gz"), UsageError.exit_code),
    Case(("import", "{export}")),
    Case(("import", "{tmp}/no-such-file.tar.gz"), NotFound.exit_code),
    # The backup volume's free-space check depends on this host's disk: alone it may fail (10).
    Case(("health",), (0, 10)),
    Case(("catalog", "rebuild"), json=False),
    Case(("repair", "index", "--dry-run")),
    Case(("repair", "index")),
    Case(("jobs",)),
    Case(("jobs", "--kind", "backup", "--limit", "2")),
    Case(("jobs", "--kind", "no-such-kind"), UsageError.exit_code),
    Case(("job", "1")),
    Case(("job", "999999"), NotFound.exit_code),
    Case(("pki", "--dir", "{tmp}/pki-{mode}", "host-{mode}", "127.0.0.1"), json=False),
    Case(("pki", "--dir", "{export}/below-a-file", "host"), UsageError.exit_code, json=False),
]
ARGV = [pytest.param(c, mode, id=f"{c.id}-{mode}") for c in CASES for mode in ("text", "json")
        if mode == "text" or c.json]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One stack for the module: a documents component, two snapshots and a runbook export."""
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("first version\n")
    (docs / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    with running_stack(str(root / "stack"), {"documents": str(docs)}) as st:
        first = json.loads(st.ragctl("backup", "--json").stdout)["id"]
        (docs / "a.txt").write_text("second version\n")
        st.ragctl("backup")
        export = str(root / "runbook.tar.gz")
        st.ragctl("export", first, "-o", export)
        st.values = {"tmp": str(root), "first": first, "export": export}
        yield st


def _fill(argv: tuple[str, ...], values: dict, mode: str) -> list[str]:
    return [a.format(mode=mode, **values) for a in argv]


@pytest.mark.parametrize("case,mode", ARGV)
def test_command(stack, case: Case, mode: str) -> None:
    argv = _fill(case.argv, stack.values, mode) + (["--json"] if mode == "json" else [])
    cp = stack.ragctl(*argv, check=False, timeout=300)
    out = f"ragctl {' '.join(argv)}: exit {cp.returncode}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
    expected = case.exit if isinstance(case.exit, tuple) else (case.exit,)
    assert cp.returncode in expected, out
    assert "Traceback" not in cp.stdout + cp.stderr, out
    if cp.returncode not in (0, 10):
        assert cp.stderr.startswith("ragctl: error: "), out
    elif mode == "json":
        json.loads(cp.stdout)
    else:
        assert cp.stdout.strip(), out


def test_dry_run_prints_the_steps(stack) -> None:
    """The README's step 3 (`ragctl restore ID --dry-run`) in text mode: the plan, exit 0."""
    cp = stack.ragctl("restore", stack.values["first"], "--dry-run")
    assert cp.stdout.startswith(f"dry run: would restore {stack.values['first']} in place"), cp.stdout
    assert "write documents (paths, 2 files, agent local) beside" in cp.stdout, cp.stdout


def test_dry_run_refuses_a_non_empty_target_as_the_restore_does(stack, tmp_path) -> None:
    """The agent's own checks (here: --target DIR/documents must be absent or empty) run in a dry run too."""
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "mine.txt").write_text("keep me\n")
    for extra in (("--dry-run",), ()):
        cp = stack.ragctl("restore", stack.values["first"], "--target", str(tmp_path), *extra, check=False)
        assert cp.returncode == UsageError.exit_code, cp.stderr
        assert f"restore target {tmp_path}/documents already exists and is not empty" in cp.stderr, cp.stderr
    assert os.listdir(tmp_path / "documents") == ["mine.txt"]
    assert json.loads(stack.ragctl("restore", stack.values["first"], "--target", str(tmp_path / "free"),
                                   "--dry-run", "--json").stdout)["restored_paths"] == {
        "documents": str(tmp_path / "free" / "documents")}
    assert not (tmp_path / "free").exists()


def test_relative_target_is_where_ragctl_runs(stack, tmp_path) -> None:
    """A relative --target means the caller's directory, not the controller's."""
    argv = stack.ragctl_argv("restore", stack.values["first"], "--target", "here", "--json")
    cp = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "here" / "documents" / "a.txt").read_text() == "first version\n"
    assert json.loads(cp.stdout)["components"]["documents"]["restored_path"] == str(tmp_path / "here" / "documents")


def test_diff_help_describes_its_arguments(stack) -> None:
    cp = stack.ragctl("diff", "--help")
    assert "the older snapshot" in cp.stdout and "the newer snapshot" in cp.stdout, cp.stdout


def test_no_traceback_in_the_daemon_logs(stack) -> None:
    """Runs after the commands above (file order): every failure was a typed error."""
    for proc in ("controller", "agent"):
        with open(os.path.join(stack.workdir, f"{proc}.log"), errors="replace") as f:
            log = f.read()
        assert "Traceback" not in log, f"{proc}.log:\n{log[-3000:]}"

"""The habits the tools enforce: ruff's time-read ban, argument-count and complexity limits,
and the import-linter contracts, each shown failing on a violation.

In: the project's pyproject.toml and small violating modules written to tmp_path.
Out: ruff and lint-imports name the violation (and pass on the fixed code).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _ruff(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                           "--output-format", "concise", str(path)], capture_output=True, text=True)


def test_ruff_bans_direct_time_reads(tmp_path):
    bad = tmp_path / "retention.py"
    bad.write_text(textwrap.dedent("""\
        import datetime
        import time


        def age(t):
            return time.time() - t, datetime.datetime.now()
        """))
    cp = _ruff(bad)
    assert cp.returncode == 1
    assert "TID251 `time.time` is banned" in cp.stdout and "TID251 `datetime.datetime.now` is banned" in cp.stdout
    bad.write_text("def age(t, now):\n    return now - t\n")
    assert _ruff(bad).returncode == 0


def test_ruff_limits_arguments_and_complexity(tmp_path):
    bad = tmp_path / "plan.py"
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(11))
    bad.write_text(f"def wide(a, b, c, d, e, f):\n    return a\n\n\ndef branchy(x):\n{branches}\n    return -1\n")
    cp = _ruff(bad)
    assert "PLR0913 Too many arguments" in cp.stdout and "C901 `branchy` is too complex" in cp.stdout


def test_core_contract_names_every_core_module():
    contract = next(c for c in _pyproject()["tool"]["importlinter"]["contracts"] if c["name"].startswith("core "))
    on_disk = {f"ragbackup.{p.stem}" for p in (ROOT / "core").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert on_disk == set(contract["source_modules"])


def _ini(contracts: list[dict]) -> str:
    """The project's contracts as an .importlinter file (for lint-imports on a scratch tree)."""
    out = ["[importlinter]", "root_packages =\n    ragbackup", "include_external_packages = True", ""]
    for n, c in enumerate(contracts):
        out.append(f"[importlinter:contract:c{n}]")
        for k, v in c.items():
            out.append(f"{k} =\n" + "\n".join(f"    {x}" for x in v) if isinstance(v, list) else f"{k} = {v}")
        out.append("")
    return "\n".join(out)


def _scratch_controller(root: Path, layers: list[str]) -> None:
    """An empty ragbackup.controller with one module or package per layer name."""
    for d in ("ragbackup", "ragbackup/controller"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "__init__.py").write_text("")
    for layer in layers:
        for name in (n.strip() for n in layer.split("|")):
            if name in ("jobs", "policy"):
                (root / "ragbackup/controller" / name).mkdir()
                (root / "ragbackup/controller" / name / "__init__.py").write_text("")
            else:
                (root / "ragbackup/controller" / f"{name}.py").write_text("")
    (root / "ragbackup/errors.py").write_text("import grpc\n")  # the one import the contract ignores


def _lint_imports(root: Path, contracts: list[dict]) -> subprocess.CompletedProcess:
    (root / ".importlinter").write_text(_ini(contracts))
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(BIN / "lint-imports"), "--no-cache", str(root / ".importlinter")],
                          capture_output=True, text=True, cwd=root, env=env)


def test_layers_contract_fails_when_policy_imports_a_job(tmp_path):
    contracts = _pyproject()["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")
    pure = next(c for c in contracts if c["name"].startswith("pure "))
    pure = {**pure, "source_modules": ["ragbackup.controller.policy"],
            "forbidden_modules": [m for m in pure["forbidden_modules"] if not m.startswith("ragbackup.")]}
    _scratch_controller(tmp_path, layers["layers"])
    policy = tmp_path / "ragbackup/controller/policy/retention.py"
    policy.write_text("def keep(snapshots, now):\n    return snapshots\n")
    cp = _lint_imports(tmp_path, [layers, pure])
    assert cp.returncode == 0, cp.stdout + cp.stderr

    policy.write_text("from ragbackup.controller.jobs import runner\n")
    (tmp_path / "ragbackup/controller/jobs/runner.py").write_text("")
    cp = _lint_imports(tmp_path, [layers, pure])
    assert cp.returncode == 1 and "controller layers" in cp.stdout and "BROKEN" in cp.stdout
    assert "ragbackup.controller.policy.retention -> ragbackup.controller.jobs.runner" in cp.stdout

    policy.write_text("import time\n")
    cp = _lint_imports(tmp_path, [layers, pure])
    assert cp.returncode == 1 and "ragbackup.controller.policy.retention -> time" in cp.stdout

"""Runs the reliability suite and writes docs/RELIABILITY.md from its results (never by hand).

In: `python -m tests.reliability.report [--long] [--output PATH] [-- PYTEST ARGS]` from the
repository root; --long sets RAG_BACKUP_RELIABILITY=long (the full counts); --merge adds the
cases of an earlier run's JUnit XML (saved with --keep-junitxml) that this run did not repeat, --merge-doc
those of a RELIABILITY.md this script wrote (the earlier run's record when its XML is gone). Out: pytest's
JUnit XML (each case's `tries`, `bound_s`, `measured_s`, `detail` properties), turned into
the table: a summary per group (cases, tries, failures), then per file every case (the first
line of its docstring), how many times it was tried, its result, bound and measured time, and
the command that reproduces it; the run's date, commit and mode on top. Exit status: pytest's.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GROUPS = [  # file prefix -> group title, in the order of the document
    ("test_crash_matrix", "Crash matrix"),
    ("test_disk_full", "Disk full"),
    ("test_outages", "Outages"),
    ("test_fuzz", "Hostile input"),
    ("test_concurrency", "Concurrency"),
    ("test_soak", "Soak"),
    ("test_report", "Suite"),
]


@dataclass
class Case:
    file: str
    name: str
    text: str
    result: str
    props: dict[str, str]

    @property
    def tries(self) -> int:
        try:
            return int(self.props.get("tries", "0" if self.result.startswith("skipped") else "1"))
        except ValueError:
            return 0

    @property
    def failed(self) -> bool:
        return self.result.startswith("FAILED") or self.result.startswith("ERROR")


def group_of(file: str) -> str:
    base = os.path.basename(file)
    for prefix, title in GROUPS:
        if base.startswith(prefix):
            return title
    return "Other"


def docstrings(path: str) -> dict[str, str]:
    """Function name -> first line of its docstring, for the test functions of `path`."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            doc = ast.get_docstring(node) or node.name
            out[node.name] = doc.strip().splitlines()[0]
    return out


def _result(tc: ET.Element) -> str:
    for tag, word in (("failure", "FAILED"), ("error", "ERROR")):
        el = tc.find(tag)
        if el is not None:
            return f"{word}: {(el.get('message') or '').splitlines()[0][:160] if el.get('message') else ''}"
    el = tc.find("skipped")
    if el is not None:
        message = el.get("message") or ""
        if el.get("type") == "pytest.xfail" or message.startswith("xfail"):
            return f"known defect (xfail): {message.removeprefix('xfail').strip(': ')}"
        return f"skipped: {message.removeprefix('Skipped: ')}"
    return "passed"


def read_cases(xml_path: str) -> list[Case]:
    cases, docs = [], {}
    for tc in ET.parse(xml_path).getroot().iter("testcase"):
        file = tc.get("file") or tc.get("classname", "").replace(".", "/") + ".py"
        file = file[file.index("tests/"):] if "tests/" in file else file
        name = tc.get("name", "")
        if file not in docs:
            path = os.path.join(ROOT, file)
            docs[file] = docstrings(path) if os.path.exists(path) else {}
        base, _, param = name.partition("[")
        text = docs[file].get(base, base) + (f" [{param}" if param else "")
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        cases.append(Case(file, name, text, _result(tc), props))
    return cases


def merge(runs: list[list[Case]]) -> list[Case]:
    """The cases of several runs, a later run's result replacing an earlier one's; file order kept."""
    by_id: dict[tuple[str, str], Case] = {}
    for cases in runs:
        for c in cases:
            by_id[(c.file, c.name)] = c
    return sorted(by_id.values(), key=lambda c: (c.file, _position(c)))


def _position(c: Case) -> int:
    """Where the case's function sits in its file (so merged cases keep the file's order)."""
    path = os.path.join(ROOT, c.file)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().find(f"def {c.name.partition('[')[0]}(")
    except OSError:
        return 0


def _bound(c: Case) -> str:
    bound, measured = c.props.get("bound_s"), c.props.get("measured_s")
    if bound is None and measured is None:
        return ""
    return f"{bound or '-'} s / {measured or '-'} s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(cases: list[Case], mode: str, commit: str, when: str, note: str = "") -> str:
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(group_of(c.file), []).append(c)
    order = [t for _, t in GROUPS if t in groups] + [t for t in groups if t not in dict(GROUPS).values()]
    out = ["# Reliability", "",
           "What rag-backup was put through, and how it came out. Generated by "
           f"`python -m tests.reliability.report{' --long' if mode == 'long' else ''}` from the suite in "
           "tests/reliability (do not edit by hand).", "",
           f"Run: {when}, commit `{commit}`, mode `{mode}` (`RAG_BACKUP_RELIABILITY={mode}`).{note}", "",
           "Tries: how many times the case was driven to its fault (seeded data and pass numbers vary per try). "
           "Bound / measured: the time the case must end within (from the configured timeouts and retries) "
           "and the longest it took.", "",
           "## Summary", "", "| group | cases | tries | failures |", "|---|---|---|---|"]
    for title in order:
        cs = groups[title]
        out.append(f"| {title} | {len(cs)} | {sum(c.tries for c in cs)} | {sum(c.failed for c in cs)} |")
    out.append(f"| **all** | {len(cases)} | {sum(c.tries for c in cases)} | {sum(c.failed for c in cases)} |")
    for title in order:
        cs = groups[title]
        out += ["", f"## {title}", "", "| case | tries | result | bound / measured | detail | reproduce |",
                "|---|---|---|---|---|---|"]
        for c in cs:
            cmd = f"`RAG_BACKUP_RELIABILITY=long .venv/bin/pytest {c.file}::{c.name}`"
            out.append(f"| {_cell(c.text)} | {c.tries} | {_cell(c.result)} | {_bound(c)} | "
                       f"{_cell(c.props.get('detail', ''))} | {cmd} |")
    return "\n".join(out) + "\n"


_ROW_CMD = re.compile(r"`RAG_BACKUP_RELIABILITY=long \.venv/bin/pytest (?P<file>[^:`]+)::(?P<name>[^`]+)`")
_RUN_LINE = re.compile(r"^Run: (?P<when>[^,]+), commit `[^`]*`, mode `(?P<mode>[a-z]+)`"
                       r"(?:.* come from an earlier run of the same mode \((?P<earlier>[^)]*)\)\.)?")


def _cells(row: str) -> list[str]:
    """The cells of a table row as render wrote it (`\\|` inside a cell is a literal bar)."""
    parts = re.split(r"(?<!\\)\|", row.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def read_document(path: str) -> tuple[list[Case], str, list[str]]:
    """(the cases, the run's mode, the dates of the runs they come from: its own, then those it merged)
    of a RELIABILITY.md that render wrote: what --merge-doc keeps of an earlier run when its JUnit XML
    is gone. A row whose command cell is not render's is skipped."""
    cases, mode, when = [], "", []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if (m := _RUN_LINE.match(line)) and not mode:
                mode, when = m["mode"], [m["when"]] + [r for r in (m["earlier"] or "").split(", ") if r]
            cells = _cells(line) if line.startswith("| ") else []
            cmd = _ROW_CMD.fullmatch(cells[5]) if len(cells) == 6 else None
            if cmd is None:
                continue
            text, tries, result, bound, detail, _ = cells
            props = {"tries": tries}
            if bound:
                b, _, measured = bound.partition(" / ")
                props.update({k: v.removesuffix(" s") for k, v in (("bound_s", b), ("measured_s", measured))
                              if v and v.removesuffix(" s") != "-"})
            if detail:
                props["detail"] = detail
            cases.append(Case(cmd["file"], cmd["name"], text, result, props))
    return cases, mode, when


def _run_of(xml_path: str) -> str:
    """When an earlier run's JUnit XML was written (its testsuite's timestamp)."""
    suite = ET.parse(xml_path).getroot().find("testsuite")
    stamp = suite.get("timestamp", "") if suite is not None else ""
    return stamp[:16].replace("T", " ") + " UTC" if stamp else os.path.basename(xml_path)


def _commit() -> str:
    cp = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (cp.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def run_suite(long: bool, xml_path: str, extra: list[str]) -> int:
    env = {**os.environ, "RAG_BACKUP_RELIABILITY": "long" if long else "fast"}
    named = any(not a.startswith("-") for a in extra)  # test ids given: only those, not the whole suite
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "junit_family=xunit1",
            f"--junitxml={xml_path}", *([] if named else [os.path.join("tests", "reliability")]), *extra]
    return subprocess.run(argv, cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.reliability.report", description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="the full counts (RAG_BACKUP_RELIABILITY=long)")
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "RELIABILITY.md"))
    ap.add_argument("--junitxml", help="render this JUnit XML instead of running the suite")
    ap.add_argument("--merge", action="append", default=[], metavar="XML",
                    help="JUnit XML of an earlier run: its cases are kept unless this run has them too")
    ap.add_argument("--merge-doc", metavar="MD", help="a RELIABILITY.md this script wrote (of the same mode): "
                    "its cases are kept unless this run has them too (when the earlier run's XML is gone)")
    ap.add_argument("--keep-junitxml", metavar="PATH", help="save this run's JUnit XML (for a later --merge)")
    ap.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = ap.parse_args(argv)
    rc, commit = 0, _commit()  # what was tested: the tree as the run starts
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = args.junitxml or os.path.join(tmp, "reliability.xml")
        if not args.junitxml:
            rc = run_suite(args.long, xml_path, args.pytest_args)
        if args.keep_junitxml:
            shutil.copyfile(xml_path, args.keep_junitxml)
        earlier, runs = [read_cases(p) for p in args.merge], [_run_of(p) for p in args.merge]
        if args.merge_doc:
            doc_cases, doc_mode, doc_when = read_document(args.merge_doc)
            if doc_mode != ("long" if args.long else "fast"):
                print(f"--merge-doc {args.merge_doc}: its run was of mode {doc_mode or 'unknown'}, not this run's",
                      file=sys.stderr)
                return 2
            earlier, runs = [doc_cases] + earlier, list(dict.fromkeys(doc_when + runs))
        cases = merge(earlier + [read_cases(xml_path)])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: TID251
    note = (f" Cases this run did not repeat come from an earlier run of the same mode "
            f"({', '.join(runs)}).") if runs else ""
    text = render(cases, "long" if args.long else "fast", commit, when, note)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.output}: {len(cases)} cases, {sum(c.failed for c in cases)} failed")
    return rc


if __name__ == "__main__":
    sys.exit(main())

"""docs/RELIABILITY.md is rendered from pytest's JUnit XML: every case, its tries, result, bound and command."""
from __future__ import annotations

from reliability import report

XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.reliability.test_crash_matrix" name="test_kill_after_packs_before_index"
 file="tests/reliability/test_crash_matrix.py" time="3.0"><properties><property name="tries" value="5"/>
 <property name="detail" value="7 kept"/></properties></testcase>
<testcase classname="tests.reliability.test_outages" name="test_s3_timeouts_end_the_backup_within_the_bound"
 file="tests/reliability/test_outages.py" time="9.0"><properties><property name="tries" value="3"/>
 <property name="bound_s" value="24.4"/><property name="measured_s" value="9.1"/></properties>
 <failure message="AssertionError: took too long">trace</failure></testcase>
<testcase classname="tests.reliability.test_outages" name="test_s3_stopped_mid_upload"
 file="tests/reliability/test_outages.py" time="0"><skipped type="pytest.skip" message="long only"/></testcase>
</testsuite></testsuites>"""


def test_report_renders_cases_groups_and_commands(tmp_path):
    """the generated table lists each case by its docstring, with tries, result, bound and the command"""
    path = tmp_path / "r.xml"
    path.write_text(XML)
    text = report.render(report.read_cases(str(path)), "long", "abc1234", "2026-01-01 00:00 UTC")
    assert "| Crash matrix | 1 | 5 | 0 |" in text
    assert "| Outages | 2 | 3 | 1 |" in text
    assert "kill -9 of the controller after a backup's packs are stored, before its index" in text
    assert "24.4 s / 9.1 s" in text and "FAILED: AssertionError: took too long" in text
    assert "skipped: long only" in text
    assert ("`RAG_BACKUP_RELIABILITY=long .venv/bin/pytest "
            "tests/reliability/test_crash_matrix.py::test_kill_after_packs_before_index`") in text
    assert "commit `abc1234`, mode `long`" in text


def test_a_rendered_document_reads_back_to_the_same_cases(tmp_path):
    """--merge-doc: a RELIABILITY.md this script wrote reads back to its cases, so rendering them again changes no row"""
    path = tmp_path / "r.xml"
    path.write_text(XML.replace('value="7 kept"', 'value="7 kept | none lost"'))
    cases = report.read_cases(str(path))
    doc = tmp_path / "RELIABILITY.md"
    note = " Cases this run did not repeat come from an earlier run of the same mode (2025-12-31 23:00 UTC)."
    doc.write_text(report.render(cases, "long", "abc1234", "2026-01-01 00:00 UTC", note))
    back, mode, when = report.read_document(str(doc))
    assert (mode, when) == ("long", ["2026-01-01 00:00 UTC", "2025-12-31 23:00 UTC"])
    def seen(cs):
        return [(c.file, c.name, c.result, c.tries, c.failed, {k: v for k, v in c.props.items() if k != "tries"})
                for c in cs]

    assert seen(back) == seen(cases)
    assert back[0].props["detail"] == "7 kept | none lost"
    assert report.render(back, "long", "abc1234", "2026-01-01 00:00 UTC", note) == doc.read_text()

"""Report arithmetic: medians with min-max, ratios to restic paired by run, interleaving order.

In: hand-made run records. Out: assertions on report.summarize, report.cell and run.interleaved.
"""
from __future__ import annotations

from bench import report
from bench.run import interleaved


def _phase(wall: float, added: int = 0) -> dict:
    return {"wall_s": wall, "cpu_s": wall / 2, "max_rss": 1_000_000, "mb_per_s": 100 / wall,
            "bytes_added": added, "repo_bytes": added, "peak_rss": {"x": 1_000_000}}


def _record(run: int, tool: str, wall: float, error: str | None = None) -> dict:
    return {"run": run, "tool": tool, "phases": {"full": _phase(wall, 10)}, "error": error}


def test_ratios_pair_runs_and_skip_failed_ones() -> None:
    records = [_record(1, "restic", 10), _record(1, "borg", 5), _record(2, "restic", 20),
               _record(2, "borg", 30), _record(3, "restic", 10), _record(3, "borg", 1, error="boom")]
    s = report.summarize(records, ["restic", "borg"])
    assert s["borg"]["full"]["wall_s"] == {"median": 17.5, "min": 5, "max": 30, "n": 2}
    assert s["borg"]["full"]["ratio_to_restic"]["wall_s"] == {"median": 1.0, "min": 0.5, "max": 1.5, "n": 2}
    assert s["restic"]["full"]["ratio_to_restic"]["wall_s"]["median"] == 1.0
    assert "nochange" not in s["borg"]


def test_cells_and_table() -> None:
    assert report.cell({"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}, "wall_s") == "2.00 [1.00-3.00]"
    assert report.cell({"median": 5e6, "min": 5e6, "max": 5e6, "n": 1}, "repo_bytes") == "5.0"
    s = report.summarize([_record(1, "restic", 10), _record(1, "borg", 5)], ["restic", "borg"])
    table = report.summary_table(s)
    assert "| borg | a full | 5.00 | x0.50 |" in table


def test_interleaving_rotates_the_order() -> None:
    assert interleaved(["a", "b", "c"], 2) == [(1, "a"), (1, "b"), (1, "c"), (2, "b"), (2, "c"), (2, "a")]
    assert interleaved([], 3) == []

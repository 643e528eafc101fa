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


def _seeded(run: int, seed: int, tool: str, phases: dict) -> dict:
    return {"run": run, "seed": seed, "tool": tool, "phases": phases, "error": None}


def test_ratios_pair_by_seed_and_run_and_divide_by_the_limit() -> None:
    records = [_seeded(1, 42, "restic", {"restore": _phase(10)}), _seeded(1, 7, "restic", {"restore": _phase(40)}),
               _seeded(1, 42, "rag", {"restore": _phase(5)}), _seeded(1, 7, "rag", {"restore": _phase(10)}),
               _seeded(1, 42, "limits", {"copy": _phase(4), "write": _phase(2)}),
               _seeded(1, 7, "limits", {"copy": _phase(5), "write": _phase(5)})]
    full = report.build({}, records, ["restic", "rag", "limits"])
    rag = full["summary"]["rag"]["restore"]
    assert rag["ratio_to_restic"]["wall_s"] == {"median": 0.375, "min": 0.25, "max": 0.5, "n": 2}
    assert rag["ratio_to_limit"]["copy"] == {"median": 1.625, "min": 1.25, "max": 2.0, "n": 2}
    assert rag["ratio_to_limit"]["write"]["max"] == 2.5
    assert full["by_seed"]["7"]["rag"]["restore"]["ratio_to_limit"]["copy"]["median"] == 2.0
    assert "| rag | d restore | 7.50 [5.00-10.00] | cp -a | 4.50 [4.00-5.00] | 1.62 [1.25-2.00] |" in \
        report.limits_table(full["summary"])
    assert "seed 42: wall s" in report.seeds_table(full["by_seed"])


def test_sweep_phases_keep_their_percentage_and_limit() -> None:
    assert report.phase_title("mutate_5") == "c after mutate 5%"
    assert report.limit_of("mutate_5") == ("read",) and report.limit_of("nochange") == ("walk",)
    records = [_seeded(1, 42, "rag", {"full": _phase(1), "mutate": _phase(2), "mutate_5": _phase(3)})]
    assert report.phases_of(records) == ["full", "mutate", "mutate_5"]
    assert list(report.summarize(records, ["rag"])["rag"]) == ["full", "mutate", "mutate_5"]

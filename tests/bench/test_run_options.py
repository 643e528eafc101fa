"""The runner's options: several seeds in one run, the --mutate-pct sweep, the order tools and limits run in.

In: bench.run's pure helpers. Out: assertions on parsed options and the execution schedule.
"""
from __future__ import annotations

import argparse

import pytest

from bench.run import mutate_phase, parse_pcts, parse_seeds, schedule


def test_seeds_take_their_own_mutate_seed_or_the_default() -> None:
    assert parse_seeds("42,1234:77", 43) == [(42, 43), (1234, 77)]
    assert parse_seeds("7", 8) == [(7, 8)]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds(" , ", 1)


def test_mutate_pct_sweep_keeps_order_and_refuses_nonsense() -> None:
    assert parse_pcts("1,5") == [1.0, 5.0]
    assert parse_pcts("5,1,5") == [5.0, 1.0]
    for bad in ("0", "101", "-1", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_pcts(bad)


def test_sweep_phase_names() -> None:
    assert mutate_phase(1.0, True) == "mutate"
    assert mutate_phase(5.0, False) == "mutate_5"
    assert mutate_phase(0.5, False) == "mutate_0.5"


def test_schedule_runs_every_seed_each_run_with_the_tools_rotated() -> None:
    got = schedule(["a", "b", "limits"], 2, [42, 7])
    assert got[:6] == [(1, 42, "a"), (1, 42, "b"), (1, 42, "limits"), (1, 7, "a"), (1, 7, "b"), (1, 7, "limits")]
    assert got[6:9] == [(2, 42, "b"), (2, 42, "limits"), (2, 42, "a")]
    assert len(got) == 12

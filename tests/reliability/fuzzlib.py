"""Shared pieces of the hostile-input tests: mutations of valid inputs, and the run/count harness.

In: a strategy of valid inputs (bytes) and a check to run on each generated input. Out:
`mutated(valid)`, a strategy of those inputs damaged the ways storage and hostile peers damage
them (bit flips, truncation, splices, inserted and deleted runs, lengths and counts overwritten
with boundary values), and `fuzz(check, strategy, fast, long)`, which runs the check under
hypothesis (derandomized: the same inputs on every run) and returns how many inputs it tried.
"""
from __future__ import annotations

import struct
from typing import Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reliability.conftest import size

from ragbackup import errors

# Byte runs that hit parsers' edges: length and count fields at 0, 1, their maxima and past them.
BOUNDARY = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00" * 4, b"\xff" * 4, b"\xff" * 8, b"\x80" * 10 + b"\x01",
            struct.pack("<I", 0x7FFFFFFF), struct.pack(">I", 0xFFFFFFF0), struct.pack("<Q", 1 << 63),
            b"\x81" + b"\xff" * 8, b"\xc3", b"-1", b"1e999", b"NaN", b'"', b"[", b"{", b"\\u0000", b"\n"]

_POS = st.integers(0, 1 << 20)
_OPS = st.one_of(
    st.tuples(st.just("flip"), _POS, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _POS),
    st.tuples(st.just("splice"), _POS, _POS, st.integers(1, 256)),
    st.tuples(st.just("insert"), _POS, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), _POS, st.integers(1, 64)),
    st.tuples(st.just("boundary"), _POS, st.sampled_from(BOUNDARY)),
)


def apply(data: bytes, ops: list[tuple]) -> bytes:
    """`data` with each mutation applied in turn (positions taken modulo the current length)."""
    buf = bytearray(data)
    for op in ops:
        n = len(buf)
        at = op[1] % (n + 1)
        if op[0] == "flip" and n:
            buf[at % n] ^= 1 << op[2]
        elif op[0] == "truncate":
            del buf[at:]
        elif op[0] == "splice" and n:
            src = op[2] % n
            buf[at:at] = buf[src:src + op[3]]
        elif op[0] == "insert":
            buf[at:at] = op[2]
        elif op[0] == "delete":
            del buf[at:at + op[2]]
        elif op[0] == "boundary":
            buf[at:at + len(op[2])] = op[2]
    return bytes(buf)


def mutated(valid: st.SearchStrategy[bytes], noise: int = 1) -> st.SearchStrategy[bytes]:
    """Valid inputs with 1-4 mutations, and now and then (weight `noise` in 8) random bytes."""
    damaged = st.tuples(valid, st.lists(_OPS, min_size=1, max_size=4)).map(lambda t: apply(*t))
    return st.one_of(*([damaged] * (8 - noise)), *([st.binary(max_size=512)] * noise))


def fuzz(check: Callable[[object], None], strategy: st.SearchStrategy, fast: int = 300,
         long: int = 100_000) -> int:
    """Run `check` on `size(fast, long)` generated inputs (derandomized); returns the count tried."""
    tried = [0]

    @settings(max_examples=size(fast=fast, long=long), derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(strategy)
    def run(value):
        tried[0] += 1
        check(value)

    run()
    return tried[0]


def expect_typed(call: Callable[[], object], *allowed: type[errors.RagBackupError]):
    """`call()`'s result, or None when it raised one of `allowed` (typed errors with their exit
    codes); any other exception propagates and fails the test with its traceback."""
    try:
        return call()
    except allowed:
        return None

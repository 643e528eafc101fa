"""Shared pieces of the hostile-input tests: mutations of valid inputs, and the run/count harness.

In: a strategy of valid inputs (bytes) and a check to run on each generated input. Out:
`mutated(valid)`, a strategy of those inputs damaged the ways storage and hostile peers damage
them (bit flips, truncation, splices, inserted and deleted runs, lengths and counts overwritten
with boundary values), and `fuzz(check, strategy, fast, long)`, which runs the check on generated inputs and returns
how many it tried. The fast (CI) sample runs under hypothesis, derandomized: the same inputs on
every run, shrunk to a minimal one on failure. The long run draws a pool of inputs from the same
strategy with hypothesis, then damages them further with a seeded mutation loop (`remix`), about
ten times faster per input than hypothesis's own generation; a failure names the seed and the
input's repr.
"""
from __future__ import annotations

import random
import struct
from typing import Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from reliability.conftest import mode, size

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
    """Run `check` on `size(fast, long)` generated inputs; returns the count tried."""
    if mode() == "long" and long > POOL:
        return _loop(check, _pool(strategy), long)
    tried = [0]

    @settings(max_examples=size(fast=fast, long=long), derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(strategy)
    def run(value):
        tried[0] += 1
        check(value)

    run()
    return tried[0]


POOL = 1000  # inputs drawn with hypothesis for the long run's mutation loop


def _pool(strategy: st.SearchStrategy) -> list:
    out: list = []

    @settings(max_examples=POOL, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(strategy)
    def draw(value):
        out.append(value)

    draw()
    return out


def _loop(check: Callable[[object], None], pool: list, count: int) -> int:
    """The pool as drawn, then inputs remixed from it with seeds 0.. until `count` were tried."""
    for i in range(count):
        value = pool[i] if i < len(pool) else remix(pool[i % len(pool)], random.Random(i))
        try:
            check(value)
        except BaseException as exc:
            exc.add_note(f"long-run input #{i} (seed {i}): {value!r:.2000}")
            raise
    return count


_NAMES = ("flip", "truncate", "splice", "insert", "delete", "boundary")


def _random_op(rng: random.Random) -> tuple:
    name, pos = rng.choice(_NAMES), rng.randrange(1 << 20)
    if name == "flip":
        return name, pos, rng.randrange(8)
    if name == "splice":
        return name, pos, rng.randrange(1 << 20), rng.randrange(1, 257)
    if name == "insert":
        return name, pos, rng.randbytes(rng.randrange(1, 25))
    if name == "delete":
        return name, pos, rng.randrange(1, 65)
    return (name, pos) if name == "truncate" else (name, pos, rng.choice(BOUNDARY))


def remix(value, rng: random.Random):
    """`value` with its bytes (and long text, as UTF-8) damaged by 1-3 more mutations, its
    mutation lists redrawn, and its dicts given a boundary value; labels and numbers are kept."""
    if isinstance(value, (bytes, bytearray)):
        return apply(bytes(value), [_random_op(rng) for _ in range(rng.randrange(1, 4))])
    if isinstance(value, str) and len(value) > 64:
        return remix(value.encode("utf-8", "surrogateescape"), rng).decode("utf-8", "surrogateescape")
    if isinstance(value, tuple) and value and value[0] in _NAMES:
        return _random_op(rng)
    if isinstance(value, (tuple, list)):
        return type(value)(remix(v, rng) for v in value)
    if isinstance(value, dict) and value and rng.random() < 0.5:
        d = dict(value)
        d[rng.choice(list(d))] = rng.choice(_ODD_VALUES)
        return d
    return value


_ODD_VALUES = [None, "", "/", "x" * 300, -1, 0, 2**63, float("nan"), float("inf"), True, [], {}, [1, "a"],
               {"": None}, "1:2\n", "docker:", "\x00"]


def expect_typed(call: Callable[[], object], *allowed: type[errors.RagBackupError]):
    """`call()`'s result, or None when it raised one of `allowed` (typed errors with their exit
    codes); any other exception propagates and fails the test with its traceback."""
    try:
        return call()
    except allowed:
        return None

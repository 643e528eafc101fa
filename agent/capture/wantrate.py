"""Whether a capture should compress chunks before the controller says it wants them.

In: after each ChunkWant, the raw bytes offered and the raw bytes wanted. Out:
`speculate`, read when the next chunks are handed to the workers.

A chunk is normally compressed only once the controller has asked for it, which
costs a round trip (offer, want, then a compression job) on every offer. While
the controller wants nearly everything (a first backup, a rewritten Redis dump),
hashing and compressing in one job takes that round trip off the critical path,
and the want only filters. While it wants little (a SQLite file with a few pages
changed) compressing ahead would waste CPU on chunks that are then dropped.
Pure: no I/O, no clock.
"""
from __future__ import annotations

# Compress ahead while the recent share of offered bytes wanted is at least this.
THRESHOLD = 0.75
# Weight of the latest want in the running share (an exponential moving average):
# about four offers of mostly known chunks turn speculation off.
WEIGHT = 0.3


class WantRate:
    """Running share of offered bytes the controller wanted; starts at 1 (a new file is usually new)."""

    def __init__(self, start: float = 1.0, weight: float = WEIGHT, threshold: float = THRESHOLD):
        self.rate = start
        self._weight = weight
        self._threshold = threshold

    def update(self, offered: int, wanted: int) -> None:
        """Fold in one want: `wanted` of `offered` raw bytes (an empty offer changes nothing)."""
        if offered <= 0:
            return
        share = min(1.0, max(0.0, wanted / offered))
        self.rate += self._weight * (share - self.rate)

    @property
    def speculate(self) -> bool:
        """True: hash and compress new chunks in one job, before the controller answers."""
        return self.rate >= self._threshold

"""Differences between a restored database and the facts recorded at backup time.

In: what an agent's verification found (a Chroma collection's count, a Redis db's DBSIZE...).
Out: Mismatch rows that travel agent -> controller -> ragctl as data, and the readable
table (component, collection, check, expected, found) a failed verification prints.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

# A VerificationFailed carries its rows in gRPC trailing metadata, which gRPC caps at 8 KiB
# together with the message: the rows (and each value) are bounded so the error always arrives.
MAX_ROWS = 8
MAX_VALUE = 64
COLUMNS = ("component", "collection", "check", "expected", "found")


@dataclass(frozen=True)
class Mismatch:
    """One difference: in `collection` (a Chroma collection, a Redis db), `check` found `found`."""

    collection: str
    check: str
    expected: str
    found: str

    def text(self) -> str:
        return f"{self.collection}: {self.check} {self.found}, expected {self.expected}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _clip(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 3] + "..."


def rows(by_component: Mapping[str, Sequence[Mapping[str, str]]]) -> list[dict[str, str]]:
    """One dict per mismatch, component first, in component order; values clipped."""
    out = []
    for component in sorted(by_component):
        for m in by_component[component]:
            out.append({"component": component, **{k: _clip(m.get(k, "")) for k in COLUMNS[1:]}})
    return out


def render(table_rows: Sequence[Mapping[str, str]], limit: int = MAX_ROWS) -> str:
    """An aligned text table of the first `limit` rows, and how many more there are."""
    shown = [[str(r.get(k, "")) for k in COLUMNS] for r in table_rows[:limit]]
    cells = [list(COLUMNS)] + shown
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    if len(table_rows) > limit:
        lines.append(f"  ... and {len(table_rows) - limit} more (the agent's log lists them all)")
    return "\n".join(lines)

"""Fast, seeded generation of compressible English-like text and incompressible bytes.

In: a numpy Generator and a byte count. Out: bytes (Zipf-distributed words, or raw random bytes).
"""
from __future__ import annotations

import numpy as np

_SYLLABLES = (
    "ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo ga ge gi go la le li lo lu ma me mi mo mu "
    "na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo ze zi zo "
    "an en in on ar er ir or al el il ol str tr pl gr th sh ch ck ng nt st"
).split()
_VOCAB_SIZE = 6000
_BLOCK_WORDS = 1 << 18


class TextModel:
    """A fixed vocabulary (with punctuation and line breaks) sampled with a Zipf-like law."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng([seed, 0x7E47])
        words = [_make_word(rng) for _ in range(_VOCAB_SIZE)]
        words = _punctuate(words, rng)
        self.max_len = max(len(w) for w in words)
        self.table = np.zeros((len(words), self.max_len), dtype=np.uint8)
        for i, w in enumerate(words):
            self.table[i, : len(w)] = np.frombuffer(w, dtype=np.uint8)
        self.lengths = np.array([len(w) for w in words], dtype=np.int64)
        weights = 1.0 / np.arange(1, len(words) + 1) ** 1.05
        self.cdf = np.cumsum(weights / weights.sum())
        self.mean_len = float((self.lengths * (weights / weights.sum())).sum())

    def text(self, rng: np.random.Generator, nbytes: int) -> bytes:
        """About `nbytes` of text (exactly `nbytes`: truncated at the end)."""
        parts: list[bytes] = []
        have = 0
        while have < nbytes:
            n_words = min(_BLOCK_WORDS, int((nbytes - have) / self.mean_len) + 16)
            chunk = self._words(rng, n_words)
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)[:nbytes]

    def _words(self, rng: np.random.Generator, n_words: int) -> bytes:
        idx = np.searchsorted(self.cdf, rng.random(n_words), side="right")
        idx = np.minimum(idx, len(self.lengths) - 1)
        rows = self.table[idx]
        mask = np.arange(self.max_len)[None, :] < self.lengths[idx][:, None]
        return rows[mask].tobytes()


def _make_word(rng: np.random.Generator) -> str:
    n = int(rng.integers(1, 5))
    return "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), n))


def _punctuate(words: list[str], rng: np.random.Generator) -> list[bytes]:
    out = [(w + " ").encode() for w in words]
    for i in rng.choice(len(out), 300, replace=False):
        out[int(i)] = (words[int(i)] + rng.choice([". ", ", ", ".\n", ".\n\n", "; ", ": "])).encode()
    out[3] = b"the "
    out[5] = b".\n"
    return out


def random_bytes(rng: np.random.Generator, nbytes: int) -> bytes:
    """Incompressible bytes (as in PDFs with compressed streams, JPEG, PNG, zip-based office files)."""
    return rng.bytes(nbytes)


_MODEL: TextModel | None = None


def model() -> TextModel:
    """The shared text model (same vocabulary for every seed: it is the 'language')."""
    global _MODEL
    if _MODEL is None:
        _MODEL = TextModel()
    return _MODEL

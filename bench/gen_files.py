"""Plain-file parts of the dataset: documents/, processing/ and config/, and their day-of-use mutation.

In: an output root, a seed, a scale (or a mutation percentage). Out: files written under the root.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.gen_text import model, random_bytes

KB = 1024
MB = 1024 * 1024
BASE_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z: every generated mtime is before this
DAY = 86_400
DOCS_AT_SCALE_1 = 15_000
JOBS_AT_SCALE_1 = 3_000
LARGE_FRACTION = 0.006
DEPTS = ("legal", "hr", "engineering", "sales", "support", "finance", "research", "marketing")
TEXT_EXT = (".md", ".txt", ".html", ".csv")
BINARY_EXT = (".pdf", ".pdf", ".png", ".jpg", ".docx")
BINARY_MAGIC = {".pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", ".png": b"\x89PNG\r\n\x1a\n",
                ".jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ".docx": b"PK\x03\x04\x14\x00\x06\x00"}


@dataclass(frozen=True)
class DocSpec:
    """One document: where it goes, whether it is text, how big, and its mtime."""

    relpath: str
    text: bool
    size: int
    mtime: int


def write_bytes(path: Path, data: bytes, mtime: int) -> None:
    """Write `data` to `path` (creating parents) and set its mtime and atime."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb", buffering=4 * MB) as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def large_upper(scale: float) -> int:
    """Upper bound for 'large' documents: 20 MB from scale 0.1 up, smaller for tiny CI datasets."""
    return max(1 * MB, int(20 * MB * min(1.0, 10 * scale)))


def doc_spec(seed: int, i: int, scale: float, prefix: str = "doc") -> DocSpec:
    """The deterministic description of document number `i`."""
    rng = np.random.default_rng([seed, 1, i])
    text = bool(rng.random() < 0.5)
    large = (i == 0 and prefix == "doc") or rng.random() < LARGE_FRACTION
    lo, hi = (1 * MB, large_upper(scale)) if large else (2 * KB, 200 * KB)
    size = int(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else lo
    ext = str(rng.choice(TEXT_EXT if text else BINARY_EXT))
    folder = _folder(rng)
    mtime = BASE_EPOCH - int(rng.integers(DAY, 5 * 365 * DAY))
    return DocSpec(f"{folder}/{prefix}-{i:06d}{ext}", text, size, mtime)


def _folder(rng: np.random.Generator) -> str:
    dept = DEPTS[int(rng.integers(len(DEPTS)))]
    year = 2019 + int(rng.integers(7))
    parts = [dept, str(year), f"project-{int(rng.integers(40)):02d}"]
    if rng.random() < 0.5:
        parts.append(("drafts", "final", "archive", "scans", "attachments")[int(rng.integers(5))])
    return "/".join(parts)


def doc_content(spec: DocSpec, rng: np.random.Generator) -> bytes:
    """The bytes of a document: Zipf text, or a format magic followed by random bytes."""
    if spec.text:
        return model().text(rng, spec.size)
    magic = BINARY_MAGIC[os.path.splitext(spec.relpath)[1]]
    return magic + random_bytes(rng, max(0, spec.size - len(magic)))


def write_documents(root: Path, seed: int, scale: float) -> int:
    """Write documents/; return the number of files."""
    n = max(3, round(DOCS_AT_SCALE_1 * scale))
    for i in range(n):
        spec = doc_spec(seed, i, scale)
        data = doc_content(spec, np.random.default_rng([seed, 2, i]))
        write_bytes(root / "documents" / spec.relpath, data, spec.mtime)
    return n


def job_record(rng: np.random.Generator, job_id: str, doc: str, state: str) -> dict:
    """A processing-queue job as the ingestion pipeline would persist it."""
    words = model().text(rng, int(rng.integers(40, 400))).decode()
    return {
        "job_id": job_id, "document": doc, "state": state,
        "attempts": int(rng.integers(1, 4)), "chunks": int(rng.integers(1, 200)),
        "embedding_model": "all-MiniLM-L6-v2", "dimension": 384,
        "created_at": BASE_EPOCH - int(rng.integers(DAY, 400 * DAY)),
        "error": None if state != "failed" else "extract: " + words[:80],
        "summary": words,
    }


def write_processing(root: Path, seed: int, scale: float) -> int:
    """Write processing/ (queue state as small JSON files); return the number of files."""
    n = max(5, round(JOBS_AT_SCALE_1 * scale))
    states = ("done", "done", "done", "done", "pending", "processing", "failed")
    for i in range(n):
        rng = np.random.default_rng([seed, 3, i])
        state = states[int(rng.integers(len(states)))]
        rec = job_record(rng, f"job-{i:06d}", doc_spec(seed, i % 997, scale).relpath, state)
        body = json.dumps(rec, indent=2).encode()
        write_bytes(root / "processing" / "queue" / state / f"job-{i:06d}.json", body, rec["created_at"])
    checkpoint = {"last_job": f"job-{n - 1:06d}", "jobs": n, "seed": seed}
    state = root / "processing" / "state" / "checkpoint.json"
    write_bytes(state, json.dumps(checkpoint).encode(), BASE_EPOCH)
    return n + 1


def doc_files(root: Path) -> list[str]:
    docs = root / "documents"
    return sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*") if p.is_file())


def _modify_doc(path: Path, rng: np.random.Generator) -> None:
    """An edit: text gets a paragraph inserted and a line appended; a binary is appended to or re-exported."""
    data = path.read_bytes()
    if path.suffix in TEXT_EXT:
        at = int(rng.integers(0, len(data) + 1))
        para = b"\n\n" + model().text(rng, int(rng.integers(200, 5000))) + b"\n\n"
        data = data[:at] + para + data[at:] + b"\nrevised: " + rng.bytes(8).hex().encode() + b"\n"
    elif rng.random() < 0.5:
        data = data + random_bytes(rng, max(64, len(data) // int(rng.integers(10, 50))))
    else:
        data = data[:16] + random_bytes(rng, max(0, len(data) - 16))
    write_bytes(path, data, int(time.time()))


def mutate_documents(root: Path, seed: int, pct: float) -> tuple[dict[str, int], list[str]]:
    """Modify, delete and add ~pct % of documents (4:2:4); return counts and the added paths."""
    files = doc_files(root)
    k = max(3, round(len(files) * pct / 100))
    n_add, n_del = max(1, round(k * 0.4)), max(1, round(k * 0.2))
    n_mod = max(1, k - n_add - n_del)
    rng = np.random.default_rng([seed, 10])
    chosen = [files[int(i)] for i in rng.choice(len(files), n_mod + n_del, replace=False)]
    for rel in chosen[:n_mod]:
        _modify_doc(root / "documents" / rel, rng)
    for rel in chosen[n_mod:]:
        (root / "documents" / rel).unlink()
    scale = len(files) / DOCS_AT_SCALE_1
    added = []
    for j in range(n_add):
        spec = doc_spec(seed, j, scale, prefix=f"upload-m{seed}")
        write_bytes(root / "documents" / spec.relpath,
                    doc_content(spec, np.random.default_rng([seed, 11, j])), int(time.time()))
        added.append(spec.relpath)
    return {"modified": n_mod, "deleted": n_del, "added": n_add}, added


def mutate_processing(root: Path, seed: int, pct: float, new_docs: list[str]) -> dict[str, int]:
    """A job per new document lands in done/; ~pct*10 % of pending jobs complete; checkpoint rewritten."""
    rng = np.random.default_rng([seed, 12])
    queue = root / "processing" / "queue"
    for j, doc in enumerate(new_docs):
        rec = job_record(rng, f"job-m{seed}-{j:06d}", doc, "done")
        write_bytes(queue / "done" / f"job-m{seed}-{j:06d}.json", json.dumps(rec, indent=2).encode(),
                    int(time.time()))
    pending = sorted((queue / "pending").glob("*.json"))
    n_move = min(len(pending), max(1, round(len(pending) * pct / 10)))
    for i in sorted(rng.choice(len(pending), n_move, replace=False).tolist()) if pending else []:
        rec = json.loads(pending[i].read_bytes())
        rec["state"] = "done"
        write_bytes(queue / "done" / pending[i].name, json.dumps(rec, indent=2).encode(), int(time.time()))
        pending[i].unlink()
    checkpoint = {"last_job": f"job-m{seed}-{len(new_docs):06d}", "mutation_seed": seed}
    write_bytes(root / "processing" / "state" / "checkpoint.json", json.dumps(checkpoint).encode(),
                int(time.time()))
    return {"jobs_added": len(new_docs), "jobs_completed": n_move if pending else 0}

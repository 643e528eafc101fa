"""`ragctl export ID|latest`: a snapshot as the runbook's rag-system-backup-*.tar.gz.

In: a snapshot id and an output path. Out: the controller's Export stream written to
FILE.part, renamed to FILE when complete (or to stdout with `-o -`).
"""
from __future__ import annotations

import os
import sys
import textwrap
from typing import BinaryIO, Iterator

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes

DESCRIPTION = "\n\n".join(textwrap.fill(p, 78) for p in (
    "Write one snapshot in the runbook's layout, so a person can recover with `tar -xzf` alone, without "
    "rag-backup: rag-system-backup-YYYYMMDD_HHMMSS.tar.gz holds a directory of the same name with one "
    "tarball per component and manifest.json.",
    "Component tarballs are named as the runbook named them: chromadb.tar.gz (chroma), redis.tar.gz, "
    "config.tar.gz, state.tar.gz (a paths component named processing or state), others after their "
    "component (documents.tar.gz). Each holds the component's files below a directory named after the "
    "component, with modes, numeric owners, mtimes to the nanosecond, symlinks and hardlinks. manifest.json "
    "records the timestamp, rag-backup version, snapshot id, components, size, file count, the snapshot's "
    "facts and which tarball holds which component. `ragctl import` reads the file back.",
    "The tarball is NOT encrypted: config.tar.gz holds the .env secrets in plain form. It is written with "
    "mode 0600, as FILE.part first, renamed to FILE when complete. The controller builds the component "
    "tarballs in its staging directory before it sends anything.",
)) + """

examples:
  ragctl export latest
  ragctl export rag-system-backup-20261124_020000 -o /mnt/usb/
  ragctl export latest -o - | aws s3 cp - s3://offsite/rag-latest.tar.gz
"""


def register(sub) -> None:
    p = sub.add_parser("export", help="write a snapshot as a runbook tarball that plain tar restores",
                       description=DESCRIPTION)
    p.add_argument("id", help="snapshot id or 'latest'")
    p.add_argument("-o", "--output", default="", metavar="FILE",
                   help="where to write (default: the snapshot's file name in the current directory); "
                        "'-' writes to stdout")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--json", action="store_true", help="print the file, its size and snapshot as JSON")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    chunks = client.stream("Export", controller_pb2.ExportRequest(id=args.id))
    first = next(chunks, None)
    if first is None:
        raise errors.RagBackupError("the controller ended the export without sending data")
    name = _suggested(first.filename)
    if args.output == "-":
        _copy(_all(first, chunks), sys.stdout.buffer, progress=False)
        sys.stdout.buffer.flush()
        return 0
    out = args.output or name
    if os.path.isdir(out):
        out = os.path.join(out, name)
    if os.path.lexists(out) and not args.force:
        raise errors.UsageError(f"{out} already exists (use --force to overwrite it)")
    size = _write(out, _all(first, chunks))
    snapshot = name[:-len(".tar.gz")]
    if args.json:
        emit_json({"file": os.path.abspath(out), "bytes": size, "snapshot": snapshot})
    else:
        print(f"exported {snapshot} to {out} ({human_bytes(size)})")
    return 0


def _suggested(filename: str) -> str:
    """The controller's file name, reduced to a plain name in the current directory."""
    name = os.path.basename(filename or "")
    return name if name.endswith(".tar.gz") and not name.startswith(".") else "rag-system-backup-export.tar.gz"


def _all(first: controller_pb2.ExportChunk, rest: Iterator[controller_pb2.ExportChunk]) -> Iterator[bytes]:
    yield first.data
    for c in rest:
        yield c.data


def _write(out: str, data: Iterator[bytes]) -> int:
    """Write to OUT.part (mode 0600), fsync, rename to OUT; the .part file goes on any failure."""
    part = out + ".part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            size = _copy(data, f, progress=sys.stderr.isatty())
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out)
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    return size


def _copy(data: Iterator[bytes], f: BinaryIO, progress: bool) -> int:
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(desc="export", unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)
    size = 0
    try:
        for block in data:
            f.write(block)
            size += len(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    return size


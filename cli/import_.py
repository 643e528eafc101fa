"""`ragctl import FILE.tar.gz`: a runbook tarball (ours or the old bash scripts') as a new snapshot.

In: a local tarball, sent to the controller in ~1 MiB chunks. Out: the new snapshot's id on
stdout (its summary on stderr), or the summary as JSON.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap
from typing import BinaryIO, Iterator

import grpc

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes

CHUNK = 1024 * 1024
SIZE_KEY = "rag-import-size"
DESCRIPTION = "\n\n".join(textwrap.fill(p, 78) for p in (
    "Read a rag-system-backup-*.tar.gz, written by `ragctl export` or by the old bash runbook, into the "
    "repository as a new snapshot of kind 'import', and print its id.",
    "Each component tarball inside becomes a component: the one manifest.json names (exports); else a "
    "configured component named like the tarball (documents.tar.gz -> documents); else the configured "
    "component of the tarball's kind (chromadb -> chroma, redis -> redis, config -> config, state -> "
    "processing or state); else a new component named after the tarball, which has no agent, so restore it "
    "with --target. Member paths lose a leading './' and the directories all members share, so the tree starts "
    "at the data's own directory: chroma.sqlite3 of `tar -czf chromadb.tar.gz /chroma/chroma` lands at the "
    "component's root.",
    "Nothing is stored when any member is unsafe (exit 9, naming the member and its tarball): an absolute "
    "path, a '..' component, a device node or fifo, a hardlink to a path that is not an earlier member, a "
    "symlink whose target is absolute or leaves the component, a path through a symlink. Tarballs that "
    "unpack to more than 1 TiB are refused (exit 2). The controller keeps the upload in its staging "
    "directory while it imports, and refuses it up front when that volume cannot hold it.",
)) + """

examples:
  ragctl import rag-system-backup-20261124_020000.tar.gz
  sid=$(ragctl import old.tar.gz --reason 'from the bash runbook') && ragctl restore "$sid" --target /srv/check
"""


def register(sub) -> None:
    p = sub.add_parser("import", help="ingest a runbook tarball as a new snapshot", description=DESCRIPTION)
    p.add_argument("file", help="the tarball (rag-system-backup-YYYYMMDD_HHMMSS.tar.gz)")
    p.add_argument("--reason", default="", help="free text recorded in the snapshot (default: 'import FILE')")
    p.add_argument("--json", action="store_true", help="print the snapshot summary as JSON")
    p.set_defaults(func=run)


def run(args, client: Client) -> int:
    try:
        f = open(args.file, "rb")
    except FileNotFoundError:
        raise errors.NotFound(f"no file {args.file}") from None
    except OSError as exc:
        raise errors.UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        metadata = client.metadata + ((SIZE_KEY, str(size)),)
        try:
            reply = client.stub.Import(_chunks(f, os.path.basename(args.file), args.reason, size), metadata=metadata)
        except grpc.RpcError as err:
            raise client.translate(err) from None
    d = json.loads(reply.details_json or "{}")
    if args.json:
        emit_json(d)
        return 0
    print(reply.snapshot_id)
    for name, c in sorted(d.get("components", {}).items()):
        s = c.get("stats", {})
        agent = f"agent {c['agent']}" if c.get("agent") else "no agent: restore with --target"
        print(f"  {name} ({c.get('kind')}, {agent}) <- {c.get('source', {}).get('archive', '?')}: "
              f"{s.get('files', 0)} files, {human_bytes(s.get('bytes_total', 0))}", file=sys.stderr)
    return 0


def _chunks(f: BinaryIO, name: str, reason: str, size: int) -> Iterator[controller_pb2.ImportChunk]:
    """The file in CHUNK pieces; the first carries the name and reason. A progress bar on a TTY."""
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=size, desc="upload", unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                   leave=False)
    try:
        first = True
        while True:
            data = f.read(CHUNK)
            if data or first:
                yield controller_pb2.ImportChunk(data=data, filename=name if first else "",
                                                 reason=reason if first else "")
            if bar is not None:
                bar.update(len(data))
            if not data:
                return
            first = False
    finally:
        if bar is not None:
            bar.close()

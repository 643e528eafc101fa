"""`ragctl import FILE.tar.gz|DIR`: a runbook backup (ours or the old bash scripts') as a new snapshot.

In: a local tarball, or the runbook's backup directory as a tar stream, sent to the controller
in ~1 MiB chunks, and --map MEMBER=COMPONENT choices. Out: the new snapshot's id on stdout; on
stderr what was imported where, what was skipped and why, and warnings; or all of it as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import Iterator

import grpc

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli import import_dir
from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json, human_bytes

CHUNK = 1024 * 1024
SIZE_KEY = "rag-import-size"
MAP_KEY = "rag-import-map"
SYMLINKS_KEY = "rag-import-symlinks"
DESCRIPTION = "\n\n".join(textwrap.fill(p, 78) for p in (
    "Read a rag-system-backup-*.tar.gz, written by `ragctl export` or by the old bash runbook, into the "
    "repository as a new snapshot of kind 'import', and print its id. FILE may also be the runbook's "
    "backup directory before it was tarred (the component tarballs, manifest.json and .env.backup): its "
    "top-level files are sent as one tarball.",
    "Each component tarball inside becomes a component: the one --map names; else the one manifest.json "
    "names (exports); else a configured component named like the tarball (documents.tar.gz -> documents); "
    "else the configured component of the tarball's kind (chromadb -> chroma, redis -> redis, config -> "
    "config, state -> processing or state; when several components have that kind, --map must choose, or "
    "the import stops with exit 2 naming them); else a new component named after the tarball, which has no "
    "agent, so restore it with --target. The runbook's .env.backup becomes `.env` (mode 0600) of the config "
    "component (the config tarball's, else the configured one; --map .env.backup=NAME chooses); a config "
    "tarball that holds its own .env keeps it. Member paths lose a leading './' and the directories all members share, so the tree starts "
    "at the data's own directory: chroma.sqlite3 of `tar -czf chromadb.tar.gz /chroma/chroma` lands at the "
    "component's root.",
    "Nothing is stored when any member is unsafe (exit 9, naming the member and its tarball): an absolute "
    "path, a '..' component, a device node or fifo, a hardlink to a path that is not an earlier member, a "
    "symlink whose target is absolute or leaves the component (unless --allow-outside-symlinks), a path "
    "through a symlink. Tarballs that "
    "unpack to more than 1 TiB are refused (exit 2). The controller keeps the upload in its staging "
    "directory while it imports, and refuses it up front when that volume cannot hold it.",
    "FILE may also be s3://BUCKET/KEY, a tarball the runbook's `aws s3 sync` uploaded: the controller "
    "downloads it into its staging directory with the endpoint and credentials of the tier whose bucket it is "
    "(or --tier), after checking that the volume can hold it, checks its size, then imports it as a local file.",
    "The snapshot's time is the backup's own: manifest.json's timestamp, else the YYYYMMDD_HHMMSS in the "
    "file name, else the import's time (the output says which); the import's time is recorded as "
    "imported_at. Redis and Chroma facts are derived from the imported data, as a backup records them: "
    "DBSIZE per db from a throwaway redis-server (on the controller's PATH; without it the import goes on "
    "with a warning and the restore is not verified) that loads dump.rdb, and per collection the id, count "
    "and dimension from chroma.sqlite3 opened read-only, so restores of the snapshot are checked.",
    "The id goes to stdout; stderr lists each member imported (-> component, entries, bytes), each one "
    "skipped and why, warnings, and the snapshot's time; --json prints all of it as the snapshot's manifest "
    "(source.imported, source.skipped, source.warnings).",
)) + """

examples:
  ragctl import rag-system-backup-20261124_020000.tar.gz
  sid=$(ragctl import old.tar.gz --reason 'from the bash runbook') && ragctl restore "$sid" --target /srv/check
  ragctl import /backups/rag-system-backup-20261124_020000/ --map chromadb=chroma_b
  ragctl import s3://rag-backups/daily/rag-system-backup-20261124_020000.tar.gz
  ragctl import --allow-outside-symlinks rag-system-backup-20261124_020000.tar.gz   # an export of your own
"""


def register(sub) -> None:
    p = sub.add_parser("import", help="ingest a runbook tarball as a new snapshot", description=DESCRIPTION)
    p.add_argument("file", help="the tarball (rag-system-backup-YYYYMMDD_HHMMSS.tar.gz), the runbook's "
                                "backup directory, or s3://BUCKET/KEY of a tarball the runbook uploaded")
    p.add_argument("--reason", default="", help="free text recorded in the snapshot (default: 'import FILE')")
    p.add_argument("--map", action="append", default=[], metavar="MEMBER=COMPONENT", type=_map_item,
                   help="put a member (chromadb, chromadb.tar.gz, .env.backup) into COMPONENT; repeatable")
    p.add_argument("--tier", default="", help="for s3://BUCKET/KEY: the offsite tier whose endpoint and credentials "
                                              "reach the bucket (default: the tier whose bucket it is)")
    p.add_argument("--allow-outside-symlinks", action="store_true",
                   help="keep symlinks whose target is absolute or leaves their component (refused by default, exit "
                        "9): for a tarball you trust, such as a `ragctl export` of a snapshot that holds them. The "
                        "links are stored as links; a restore writes them without following them")
    p.add_argument("--json", action="store_true", help="print the snapshot summary as JSON")
    p.set_defaults(func=run)


def _map_item(text: str) -> tuple[str, str]:
    member, sep, name = text.partition("=")
    if not sep or not member or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not MEMBER=COMPONENT (e.g. chromadb=chroma_b)")
    return member, name


def _mapping(items: list[tuple[str, str]]) -> str:
    out: dict[str, str] = {}
    for member, name in items:
        if out.get(member, name) != name:
            raise errors.UsageError(f"--map {member} is given twice ({out[member]} and {name})")
        out[member] = name
    return json.dumps(out, ensure_ascii=True)


def run(args, client: Client) -> int:
    mapping = _mapping(args.map)
    fields = ((MAP_KEY, mapping),) + (((SYMLINKS_KEY, "outside"),) if args.allow_outside_symlinks else ())
    if args.file.startswith("s3://"):  # the controller downloads it with a tier's credentials
        reply, not_sent = client.call("ImportS3", controller_pb2.ImportS3Request(
            url=args.file, tier=args.tier, reason=args.reason, map_json=mapping,
            outside_symlinks=args.allow_outside_symlinks), timeout=None), []
    elif os.path.isdir(args.file):
        reply, not_sent = _send_dir(args, client, fields)
    else:
        reply, not_sent = _send_file(args, client, fields), []
    d = json.loads(reply.details_json or "{}")
    if not_sent:
        d.setdefault("source", {}).setdefault("skipped", [])[:0] = not_sent
    if args.json:
        emit_json(d)
        return 0
    print(reply.snapshot_id)
    _summary(d)
    return 0


def _call(client: Client, pieces: Iterator[bytes], name: str, reason: str,  # noqa: PLR0913 (the call's fields)
          size: int, fields: tuple[tuple[str, str], ...]):
    """The Import call, `fields` (the --map and symlink choices) sent as metadata; a read error of our own
    (gRPC reports it as a cancel) is raised as itself."""
    metadata = client.metadata + ((SIZE_KEY, str(size)),) + fields
    failed: list[Exception] = []

    def reading() -> Iterator[bytes]:
        try:
            yield from pieces
        except (OSError, errors.RagBackupError) as exc:
            failed.append(exc)
            raise

    try:
        return client.stub.Import(_chunks(reading(), name, reason, size), metadata=metadata)
    except grpc.RpcError as err:
        if failed and isinstance(failed[0], errors.RagBackupError):
            raise failed[0] from None
        if failed:
            raise errors.UsageError(f"cannot read {failed[0].filename or name}: {failed[0].strerror}") from None
        raise client.translate(err) from None


def _send_file(args, client: Client, fields: tuple[tuple[str, str], ...]):
    try:
        f = open(args.file, "rb")
    except FileNotFoundError:
        raise errors.NotFound(f"no file {args.file}") from None
    except OSError as exc:
        raise errors.UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        pieces = iter(lambda: f.read(CHUNK), b"")
        return _call(client, pieces, os.path.basename(args.file), args.reason, size, fields)


def _send_dir(args, client: Client, fields: tuple[tuple[str, str], ...]):
    try:
        up = import_dir.plan(args.file)
    except OSError as exc:
        raise errors.UsageError(f"cannot read the directory {args.file}: {exc.strerror}") from None
    not_sent = [{"member": name, "why": f"{why}: not sent"} for name, why in up.skipped]
    return _call(client, import_dir.stream(args.file, up), up.filename, args.reason, up.size, fields), not_sent


def _summary(d: dict) -> None:
    """What went where, what was skipped and why, warnings, and where the snapshot's time came from."""
    src = d.get("source", {})
    comps = d.get("components", {})
    for item in src.get("imported", []):
        c = comps.get(item.get("component"), {})
        agent = f"agent {c['agent']}" if c.get("agent") else "no agent: restore with --target"
        what = f" as {item['as']}" if item.get("as") else ""
        print(f"  imported {item.get('member')} -> {item.get('component')}{what} ({c.get('kind')}, {agent}): "
              f"{item.get('entries', 0)} entries, {human_bytes(item.get('bytes', 0))}", file=sys.stderr)
    for item in src.get("skipped", []):
        print(f"  skipped {item.get('member')}: {item.get('why')}", file=sys.stderr)
    for text in src.get("warnings", []):
        print(f"  warning: {text}", file=sys.stderr)
    print(f"  time {d.get('time')} (from {src.get('time_from', '?')}), imported at {d.get('imported_at')}",
          file=sys.stderr)


def _chunks(pieces: Iterator[bytes], name: str, reason: str, size: int) -> Iterator[controller_pb2.ImportChunk]:
    """The data in CHUNK pieces; the first carries the name and reason. A progress bar on a TTY."""
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=size, desc="upload", unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                   leave=False)
    try:
        yield controller_pb2.ImportChunk(data=b"", filename=name, reason=reason)
        for data in _rechunk(pieces):
            yield controller_pb2.ImportChunk(data=data)
            if bar is not None:
                bar.update(len(data))
    finally:
        if bar is not None:
            bar.close()


def _rechunk(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pieces of any size (tar headers, padding, data) as messages of about CHUNK bytes."""
    buf: list[bytes] = []
    held = 0
    for piece in pieces:
        buf.append(piece)
        held += len(piece)
        if held >= CHUNK:
            yield b"".join(buf)
            buf, held = [], 0
    if buf:
        yield b"".join(buf)

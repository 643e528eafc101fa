"""ragctl: the operator's command line for rag-backup.

In: argv. Out: one call (or job stream) to the controller over its unix socket,
rendered as a table or JSON, and an exit code that says what happened.
"""
from __future__ import annotations

import argparse
import os
import sys

from ragbackup import __version__, errors, logs

from ragbackup.cli import (backup, catalog, config, demo, diff, export, health, import_, init, pki, restore, show,
                           snapshots, verify)
from ragbackup.cli import jobs
from ragbackup.cli import forget, prune  # retention: forget snapshots, reclaim their data
from ragbackup.cli import replicate
from ragbackup.cli import archive, lifecycle, lock  # archive tiers, lifecycle rules, object lock
from ragbackup.cli.client import Client, socket_path
from ragbackup.cli import repair
from ragbackup.cli import drill
from ragbackup.cli.output import emit_json
from ragbackup.cli import status

EXIT_CODES = """\
exit codes:
  0    success
  1    failure not covered below
  2    usage error (bad arguments or request)
  3    configuration error (file, key and expected value are named), or the
       controller's state_dir cannot be used (path and operation are named)
  4    repository error (missing, wrong passphrase or key file, damaged key object,
       unsupported format, volume read-only or full: path and operation are named)
  5    not found (snapshot, component)
  6    integrity error (damaged data; `verify` names damaged objects and affected snapshots)
  7    unavailable (controller, agent or storage cannot be reached)
  8    busy (another job holds the lock; the holder is named)
  9    unsafe path refused (absolute, `..` or through a symlink)
  10   unhealthy (health check failed; `status`: an alert is firing)
  11   verification after restore failed (data differs from the snapshot's facts; a drill FAILED or TIMED_OUT)
  130  cancelled
"""

VERBS = [init, backup, snapshots, show, restore, verify, diff, export, import_, catalog, health, pki, demo]
VERBS.insert(VERBS.index(catalog) + 1, repair)
VERBS += [jobs, status, config]
VERBS.insert(VERBS.index(verify) + 1, drill)
VERBS += [forget, prune]
VERBS += [replicate]
VERBS += [archive, lifecycle, lock]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ragctl",
        description="Back up and restore a RAG stack (ChromaDB, Redis, documents, config) through the "
                    "rag-backup controller.",
        epilog=EXIT_CODES + "\nenvironment:\n  RAG_BACKUP_SOCKET               controller socket\n"
                            "  RAG_BACKUP_CONTROLLER_CONFIG    controller config (for its socket path)\n"
                            "  RAG_BACKUP_TRIGGER              what started ragctl (timer, path), kept in job records\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket", help="controller unix socket (default: from the controller config, "
                                    "else /run/rag-backup/controller.sock)")
    p.add_argument("--config", help="controller config file, read for its socket path")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version=f"ragctl {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")
    sub.required = True
    for verb in VERBS:
        verb.register(sub)
    for sp in sub.choices.values():
        sp.formatter_class = argparse.RawDescriptionHelpFormatter
        sp.epilog = EXIT_CODES
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.setup(args.verbose - 1, "ragctl")
    try:
        if getattr(args, "local", False):
            return args.func(args)
        return args.func(args, Client(socket_path(args.socket, args.config)))
    except errors.RagBackupError as exc:
        print(f"ragctl: error: {exc.message}", file=sys.stderr)
        if getattr(args, "json", False):  # scripts get the error as data too (e.g. verification rows)
            emit_json({"error": exc.to_dict()})
        return exc.exit_code
    except OSError as exc:  # a local file named on the command line (export -o, pki --dir)
        where = f" {os.fsdecode(exc.filename)}" if exc.filename else ""
        print(f"ragctl: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return errors.UsageError.exit_code
    except KeyboardInterrupt:
        print("ragctl: cancelled", file=sys.stderr)
        return errors.Cancelled.exit_code
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

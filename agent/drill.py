"""A restore drill of one component on this agent: restore into scratch, start it, check it, remove it.

In: the Drill stream's RestoreStart (component, facts, keys) and its entries and chunks.
Out: a DrillResult with one CheckResult per check. The tree is written into a fresh scratch
directory in the staging dir (every file's content is checked against its chunk ids while it
is written); redis data is loaded by a throwaway redis-server and its DBSIZE per db compared
with the facts; chroma data gets `PRAGMA quick_check`, then a throwaway `chroma run` whose
collections, counts and probe queries' top-k ids are compared with the facts. Servers listen
on free 127.0.0.1 ports, are recorded by PID (drill_procs) and stopped; the scratch directory
is removed, whatever happens. Each kind's checks live with the kind (agent/kinds/*/verify.py). A failed check is a result, not an error; a cancelled call
(the controller went away) stops at the next step and cleans up the same way.
"""
from __future__ import annotations

import json
import logging
import os
import time

from ragbackup import errors
from ragbackup.repo.dictionary import Dictionaries
from ragbackup.v1 import agent_pb2

from ragbackup.agent.component import Component
from ragbackup.agent.drill_procs import DrillSetup, check
from ragbackup.agent.kinds.registry import kind_of
from ragbackup.agent.restore import ChunkDecoder, TreeWriter
from ragbackup.agent.scratch import staging

log = logging.getLogger("ragbackup.agent.drill")

START_TIMEOUT_S = 300.0  # a server that has not answered by then fails its check


def run(start: agent_pb2.RestoreStart, stream, setup: DrillSetup) -> agent_pb2.DrillResult:
    """Drill one component; `stream` yields its entries (`entries()`) and chunk batches (`try_batch()`)."""
    began = time.monotonic()
    spec = start.component
    kind_checks = kind_of(Component.of(spec)).drill or _no_more
    with staging(setup.cfg, f"drill-{spec.name}") as scratch:
        data = os.path.join(scratch, "data")
        log.info("drill %s (%s) of %s in %s", spec.name, spec.kind, start.snapshot_id, scratch)
        try:
            counts = _write_tree(start, stream, data, setup)
        except (errors.IntegrityError, errors.UnsafePath) as exc:
            return agent_pb2.DrillResult(checks=[check("restore", False, exc.message)],
                                         seconds=time.monotonic() - began)
        checks = [check("restore", True, f"{counts.files} files, {counts.bytes_written} bytes written; every "
                                          "file's content matched its chunk ids")]
        facts = json.loads(start.facts_json or "{}")
        checks += kind_checks(data, scratch, facts, setup)
    result = agent_pb2.DrillResult(files=counts.files, bytes_written=counts.bytes_written, checks=checks,
                                   seconds=time.monotonic() - began)
    log.info("drill %s done in %.1fs: %s", spec.name, result.seconds,
             ", ".join(f"{c.name} {'ok' if c.ok else 'FAILED'}" for c in checks))
    return result


def _write_tree(start: agent_pb2.RestoreStart, stream, root: str, setup: DrillSetup):
    writer = TreeWriter(root, start.id_key)
    decoder = ChunkDecoder(stream.try_batch, start.id_key, setup.workers, dicts=Dictionaries(start.dictionaries),
                           pool=setup.pool)
    try:
        for entry, ids in stream.entries():
            if not setup.alive():
                raise errors.Cancelled("the controller ended the drill")
            writer.write(entry, decoder, ids)
        return writer.finish()
    except BaseException:
        writer.close()
        raise
    finally:
        decoder.close()


def _no_more(data: str, scratch: str, facts: dict, setup: DrillSetup) -> list[agent_pb2.CheckResult]:
    return []  # files: the restore check (content against chunk ids) is the whole check

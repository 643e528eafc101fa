"""JobEvent constructors shared by the controller's long-running jobs.

In: phase names, counters, messages and results. Out: controller_pb2.JobEvent
messages that jobs yield and the servicer streams to ragctl.
"""
from __future__ import annotations

import json

from ragbackup.v1 import controller_pb2


def progress(phase: str, done: int, total: int = 0, unit: str = "B") -> controller_pb2.JobEvent:
    return controller_pb2.JobEvent(progress=controller_pb2.Progress(phase=phase, done=done, total=total, unit=unit))


def log(message: str) -> controller_pb2.JobEvent:
    return controller_pb2.JobEvent(log=message)


def result(summary: str, details: dict) -> controller_pb2.JobEvent:
    return controller_pb2.JobEvent(result=controller_pb2.JobResult(
        summary=summary, details_json=json.dumps(details, sort_keys=True)))

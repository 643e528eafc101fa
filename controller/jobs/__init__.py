"""Controller jobs: the runner (record, audit, progress, cancellation) and one module per job kind.

In: requests the servicer unpacked. Out: JobEvents and job records; see runner.py for how
to add a job kind.
"""
from __future__ import annotations

from ragbackup.controller.jobs.records import JobRecord, JobRecords
from ragbackup.controller.jobs.runner import KINDS, Job, JobContext, Runner

__all__ = ["KINDS", "Job", "JobContext", "JobRecord", "JobRecords", "Runner"]

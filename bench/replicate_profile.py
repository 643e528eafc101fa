"""Profile of one replication to S3: where the time of `TierCopy` goes, every copy thread included.

In: --scale (the benchmark dataset, bench/dataset.py), --data-dir, a `weed` binary. A LocalStack
backs the dataset up with no tier configured, its controller is stopped, then the replication of
that snapshot runs in this process against a fresh `weed server`, under pyinstrument (the planning
on this thread, each pack copy on its copy thread; the sessions are combined). Out: the profile as
text (and HTML with --html) and the copier's own timings, with the CPU seconds of the copy. Not a timed test.
    .venv/bin/python -m bench.replicate_profile --scale 0.5 --data-dir /var/tmp/ragbench-replicate
"""
from __future__ import annotations

import json
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.session import Session

from ragbackup.config import load_controller_config
from ragbackup.localstack import LocalStack

from bench import dataset
from bench.replicate import STREAMS, Weed, dataset_arguments, prepared_dataset, put_throughput

MiB = 1024 * 1024


class ThreadProfiles:
    """Wraps a function so each call runs under its own pyinstrument Profiler; `combined()` merges them."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self._lock = threading.Lock()

    def wrap(self, fn):
        def profiled(*args, **kwargs):
            prof = Profiler(interval=0.005)
            prof.start()
            try:
                return fn(*args, **kwargs)
            finally:
                session = prof.stop()
                with self._lock:
                    self.sessions.append(session)
        return profiled

    def wrap_generator(self, fn):
        """As wrap, for a generator function: the profiler runs while the generator is iterated."""
        def profiled(*args, **kwargs):
            prof = Profiler(interval=0.005)
            prof.start()
            try:
                yield from fn(*args, **kwargs)
            finally:
                session = prof.stop()
                with self._lock:
                    self.sessions.append(session)
        return profiled

    def combined(self) -> Session | None:
        out = None
        for s in self.sessions:
            out = s if out is None else Session.combine(out, s)
        return out


def _cpu_seconds() -> float:
    """User and system CPU of this process, every thread (the copy's, and the profilers' own sampling):
    on a shared machine the work done, where wall time is also the other jobs' load."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def backed_up_stack(work: Path, src: Path, weed: Weed) -> LocalStack:
    """A LocalStack holding one backup of `src`, its controller stopped; the config names tier `s3`."""
    st = LocalStack(str(work / "stack"), agent_socket=True)
    for comp in dataset.COMPONENTS:
        st.add_paths_component(comp, str(src / comp))
    try:
        st.start()
        st.ragctl("init")
        st.ragctl("backup")
        st.stop_process("controller")
    except BaseException:
        st.stop()  # the daemons started so far
        raise
    creds = work / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {weed.key}\naws_secret_access_key = {weed.secret}\n")
    creds.chmod(0o600)  # the controller refuses a credentials file others may read
    st.extra_toml = (f'[tiers.s3]\nendpoint_url = "{weed.endpoint}"\nbucket = "{weed.bucket("ragbackup-tier")}"\n'
                     f'credentials = "{creds}"\nmax_concurrency = {STREAMS}\n')
    st.write_configs()
    return st


def profile_copy(st: LocalStack) -> tuple[Profiler, ThreadProfiles, dict]:
    """Run the copy of every primary snapshot to tier `s3` in this process, profiled."""
    from ragbackup.controller import replication
    from ragbackup.controller.replication import TierCopy, copy_snapshots
    from ragbackup.controller.state import Controller

    ctl = Controller(load_controller_config(st.controller_config))
    main = Profiler(interval=0.005)
    began, cpu = time.monotonic(), _cpu_seconds()
    main.start()
    src, catalog = ctl.synced("primary")
    dst = ctl.repositories.target("s3", src)
    copier = TierCopy(src, dst, ctl.cfg.tiers["s3"], threading.Event())
    opened = time.monotonic()
    threads = ThreadProfiles()
    copier.copy_pack = threads.wrap(copier.copy_pack)
    if hasattr(copier, "read_pack"):  # the source reader's thread (read-ahead), where there is one
        copier.read_pack = threads.wrap(copier.read_pack)
    if hasattr(replication, "IndexWriter"):  # index objects written on a thread of their own
        copier.write_index = threads.wrap(copier.write_index)
    if hasattr(copier, "copy_index"):  # the source's index objects copied as they are
        copier.copy_index = threads.wrap(copier.copy_index)
    if hasattr(copier, "_pack_batches"):  # the planning thread: trees read and blob ids looked up
        copier._pack_batches = threads.wrap_generator(copier._pack_batches)
    for _ in copy_snapshots(copier, [r.id for r in catalog.list()], lambda sid: None):
        pass
    main.stop()
    t = copier.totals
    secs, cpu = time.monotonic() - began, _cpu_seconds() - cpu
    ctl.close()
    return main, threads, {"seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "opening": round(opened - began, 2),
                           "planning": round(t.plan_seconds, 2), "packs_seconds": round(t.pack_seconds, 2),
                           "index_copied": getattr(t, "index_copied", 0), "objects": t.objects,
                           "packs": t.packs, "bytes": t.bytes, "mib_s": round(t.bytes / MiB / secs, 1)}


def main(argv: list[str] | None = None) -> int:
    p = dataset_arguments("bench.replicate_profile", __doc__.split("\n\n")[0])
    p.add_argument("--html", default="", help="write the combined copy-thread profile here as HTML")
    args = p.parse_args(argv)
    root = Path(args.data_dir)
    src = prepared_dataset(root, args.seed, args.scale)
    work = root / "profile-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    weed = Weed(work / "weed")
    try:
        st = backed_up_stack(work, src, weed)
        try:
            put = put_throughput(weed, args.put_mib * MiB)
            main_prof, threads, timing = profile_copy(st)
        finally:
            st.stop()
    finally:
        weed.stop()
    print(main_prof.output_text(unicode=False, show_all=False))
    combined = threads.combined()
    if combined is not None:
        copy = Profiler()
        copy._last_session = combined
        print(copy.output_text(unicode=False, show_all=False))
        if args.html:
            Path(args.html).write_text(copy.output_html())
    print(json.dumps({"put": put, "copy": timing, "copy_vs_put": round(timing["mib_s"] / put["mib_s"], 2)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ragctl demo`: the whole stack's backup and recovery end to end on loopback, with nothing to configure.

In: a work directory (see demo_workdir: only what a demo created is ever deleted), --keep, --force.
Out: a real redis-server and a real `chroma run` (containers of a private Docker engine, so the agent
stops and starts them as in production), documents, processing state and config with a `.env`; an
agent and a controller as separate processes (mTLS gRPC) with a local repository; then full backup of
all five components, a day of changes and a second backup, damage to Chroma and Redis, in-place
recovery checked against the snapshot's facts, a point-in-time restore into a target dir, verify
--read-data, a report of each step and `demo PASSED`. Exit 0 only if every check passed.
"""
from __future__ import annotations

import json
import os
import shutil
import time

from ragbackup import errors
from ragbackup.lazy import lazy_import

# The demo's stack (certificates, subprocesses, Docker, chromadb) loads only when `ragctl demo` runs.
localstack = lazy_import("ragbackup.localstack")
data = lazy_import("ragbackup.cli.demo_data")
services = lazy_import("ragbackup.cli.demo_services")
workdirs = lazy_import("ragbackup.cli.demo_workdir")

PATH_COMPONENTS = (("documents", "paths"), ("processing", "paths"), ("config", "config"))
ALL = ("chroma", "redis", "documents", "processing", "config")


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole stack's backup and recovery on loopback (no config needed)",
                       description="Start a redis-server and a Chroma server (containers of a private Docker "
                                   "engine), an agent and a controller on 127.0.0.1 with a fresh CA and a local "
                                   "repository under WORKDIR; fill Redis, Chroma, documents, processing state "
                                   "and config; back up all five components, change data, back up again, damage "
                                   "Chroma and Redis, recover them in place, restore the first snapshot into a "
                                   "target dir, verify, and print what each step did.")
    p.add_argument("--workdir", default="rag-backup-demo",
                   help="where everything goes (default: %(default)s); an existing non-empty dir is refused "
                        "unless a previous demo made it or --force is given")
    p.add_argument("--keep", action="store_true",
                   help="keep WORKDIR (data, repository, daemons' configs, logs and state) for inspection; "
                        "without it the demo removes what it created when every check passed")
    p.add_argument("--force", action="store_true",
                   help="use a non-empty WORKDIR that is not a previous demo's (nothing in it is deleted)")
    p.set_defaults(func=run, local=True)


class _Steps:
    def __init__(self):
        self.t0 = time.monotonic()
        self.ok = True

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def check(self, cond: bool, what: str) -> None:
        self.ok &= bool(cond)
        self.say(("OK    " if cond else "FAILED ") + what)


def _why(problems: list[str]) -> str:
    """": A; B" for the problems found, "" when there are none."""
    problems = [p for p in problems if p]
    return (": " + "; ".join(problems)) if problems else ""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB"


class _Demo:
    """One run: the work dir, the engine and its two services, the stack, the steps."""

    def __init__(self, wd, steps: _Steps):
        self.wd = wd
        self.steps = steps
        self.data = wd.sub("data")
        self.engine = services.DemoEngine(wd.sub("docker"), wd.sub("logs"))
        self.redis = self.chroma = None
        self.stack = None

    # --- the databases -----------------------------------------------------------------

    def start_services(self) -> None:
        os.makedirs(self.wd.sub("logs"), exist_ok=True)
        self.engine.start()
        self.engine.build_image()
        self.steps.say(f"private Docker engine (pid {self.engine.proc.pid}) at {self.engine.host}; "
                       f"image {services.IMAGE} made from the host's /usr (no registry)")
        self.redis = self.engine.run_redis("demo-redis", localstack.free_port(), os.path.join(self.data, "redis"))
        self.chroma = self.engine.run_chroma("demo-chroma", localstack.free_port(),
                                             os.path.join(self.data, "chroma"))
        services.wait_for(lambda: data.redis_ready(self.redis.port), 30, "redis-server")
        services.wait_for(lambda: services.chroma_heartbeat(self.chroma.port), 90, "chroma run")
        keys = data.fill_redis(self.redis.port)
        self.steps.say(f"redis-server in container {self.redis.name} on 127.0.0.1:{self.redis.port}: {keys} keys "
                       f"(strings, hashes, lists, sets, sorted sets; db 0 and 1), dir {self.redis.data_dir}")
        vectors = data.fill_chroma(self.chroma.port)
        self.steps.say(f"chroma run in container {self.chroma.name} on 127.0.0.1:{self.chroma.port}: {vectors} "
                       f"vectors in {len(data.COLLECTIONS)} collections, persist dir {self.chroma.data_dir}")

    def declare(self) -> None:
        self.stack = localstack.LocalStack(self.wd.sub("stack"), env={"DOCKER_HOST": self.engine.host})
        # consistency "pause": the agent freezes the container while it copies the persist dir (docker pause).
        # It also makes the agent load its Docker client during the backup, from one thread: with "online",
        # the first Docker use is the in-place restore of chroma and redis in parallel, and Python 3.11's
        # importlib LazyLoader (ragbackup.lazy) lets the second thread see a half-loaded `docker` module.
        self.stack.add_component("chroma", "chroma", self.chroma.data_dir, url=f"http://127.0.0.1:{self.chroma.port}",
                                 consistency="pause", service=self.chroma.service, owner="0:0", timeout_s=90)
        self.stack.add_component("redis", "redis", self.redis.data_dir, port=self.redis.port,
                                 service=self.redis.service, owner="0:0", timeout_s=60)
        for name, kind in PATH_COMPONENTS:
            self.stack.add_component(name, kind, os.path.join(self.data, name))

    # --- ragctl -------------------------------------------------------------------------

    def ragctl_json(self, *args: str) -> dict:
        return json.loads(self.stack.ragctl(*args, "--json").stdout)

    def backup(self, reason: str) -> dict:
        return self.ragctl_json("backup", "--reason", reason)

    def report_backup(self, label: str, m: dict) -> None:
        s = m["stats"]
        self.steps.say(f"{label}: snapshot {m['id']} ({m['kind']}) of {', '.join(sorted(m['components']))}: "
                       f"read {_mib(s['bytes_read'])} of {_mib(s['bytes_total'])}, sent {_mib(s['bytes_sent'])}, "
                       f"added {_mib(s['bytes_stored'])} to the repository")
        for name in ALL:
            cs = m["components"][name]["stats"]
            self.steps.say(f"    {name:<11} {_mib(cs.get('bytes_total', 0)):>11} total, "
                           f"{_mib(cs.get('bytes_read', 0)):>11} read, {_mib(cs.get('bytes_sent', 0)):>11} sent")
        facts = {n: m["components"][n].get("facts", {}) for n in ("chroma", "redis")}
        probes = sum(len(c["probes"]) for c in facts["chroma"].get("collections", []))
        self.steps.say(f"    facts recorded: redis DBSIZE {facts['redis'].get('dbsize')}; chroma "
                       f"{data.chroma_counts(facts['chroma'])}, {probes} probe queries with their top-k ids")

    # --- the scenario ---------------------------------------------------------------------

    def scenario(self) -> None:
        steps = self.steps
        steps.say(f"repository: {self.stack.ragctl('init').stdout.strip()}")
        first = self.backup("demo-initial")
        self.report_backup("backup 1", first)
        steps.check(sorted(first["components"]) == sorted(ALL), "backup 1 holds all five components")
        shutil.copytree(self.data, self.wd.sub("pristine"), symlinks=True,
                        ignore=shutil.ignore_patterns("redis", "chroma"))
        for what in [*data.change_files(self.data), data.change_redis(self.redis.port),
                     data.change_chroma(self.chroma.port)]:
            steps.say(f"change: {what}")
        second = self.backup("demo-after-change")
        self.report_backup("backup 2", second)
        steps.check(second["stats"]["bytes_sent"] < first["stats"]["bytes_sent"] / 4,
                    f"backup 2 sent {_mib(second['stats']['bytes_sent'])}, "
                    f"{100 * second['stats']['bytes_sent'] / max(1, first['stats']['bytes_sent']):.1f}% of backup 1")
        diff = self.stack.ragctl("diff", first["id"], second["id"]).stdout.strip().splitlines()
        steps.check(any(line.startswith("+ documents/tenant-2/new-upload.txt") for line in diff),
                    f"diff {first['id']} {second['id']}: {diff[-1] if diff else '(empty)'}")
        self.recover_in_place(second)
        self.restore_point_in_time(first)
        verify = self.stack.ragctl("verify", "--read-data", check=False)
        steps.check(verify.returncode == 0, f"verify --read-data: {verify.stdout.strip().splitlines()[0]}")

    def recover_in_place(self, snapshot: dict) -> None:
        steps = self.steps
        sample = data.redis_sample(self.redis.port)
        steps.say(f"disaster: {data.damage_redis(self.redis.port)}")
        steps.say(f"disaster: {data.damage_chroma(self.chroma.port, self.chroma.data_dir)} (quick_check: "
                  f"{data.sqlite_quick_check(os.path.join(self.chroma.data_dir, 'chroma.sqlite3'))[:60]})")
        steps.say("ragctl restore latest --components chroma,redis (in place: the agent stops each container, "
                  "moves the damaged data aside, places the snapshot, starts it and checks the facts)")
        started = {s.name: self.engine.started_at(s.name) for s in (self.chroma, self.redis)}
        out = self.stack.ragctl("restore", "latest", "--components", "chroma,redis", "--json", check=False)
        restarted = [n for n, t in started.items() if self.engine.started_at(n) != t]
        steps.check(len(restarted) == 2, f"the agent stopped and started the containers {', '.join(restarted)}")
        result = json.loads(out.stdout).get("components", {}) if out.stdout.strip().startswith("{") else {}
        steps.check(out.returncode == 0, f"ragctl restore exited {out.returncode}" + _why([out.stderr.strip()]))
        for name in ("chroma", "redis"):
            r = result.get(name, {})
            steps.check(r.get("mismatches") == [], f"{name}: the agent found no difference from the snapshot's "
                                                   f"facts; damaged data kept at {r.get('moved_aside') or '(none)'}")
        facts = {n: snapshot["components"][n]["facts"] for n in ("chroma", "redis")}
        problems = data.redis_matches(self.redis.port, facts["redis"])
        steps.check(not problems, f"redis DBSIZE {data.redis_dbsizes(self.redis.port)} equals the snapshot's"
                                  f"{_why(problems)}")
        steps.check(data.redis_sample(self.redis.port) == sample,
                    "redis values of each type (hash, list, set, sorted set, string) are back as they were")
        problems = data.chroma_matches(self.chroma.port, facts["chroma"])
        steps.check(not problems, f"chroma collections and counts ({data.chroma_counts(facts['chroma'])}) and every "
                                  f"probe's top-k ids equal the snapshot's{_why(problems)}")
        sqlite = os.path.join(self.chroma.data_dir, "chroma.sqlite3")
        steps.check(data.sqlite_quick_check(sqlite) == "ok", f"{sqlite}: PRAGMA quick_check ok")

    def restore_point_in_time(self, first: dict) -> None:
        steps = self.steps
        target = self.wd.sub("restored")
        self.stack.ragctl("restore", first["id"], "--target", target)
        pristine = self.wd.sub("pristine")
        steps.check(all(data.same_tree(os.path.join(pristine, c), os.path.join(target, c))
                        for c, _ in PATH_COMPONENTS),
                    f"restore of {first['id']} into {target}: documents, processing and config are identical "
                    "to the data at backup 1")
        facts = {n: first["components"][n]["facts"] for n in ("chroma", "redis")}
        redis_b = self.engine.run_redis("demo-redis-check", localstack.free_port(), os.path.join(target, "redis"))
        chroma_b = self.engine.run_chroma("demo-chroma-check", localstack.free_port(), os.path.join(target, "chroma"))
        services.wait_for(lambda: data.redis_ready(redis_b.port), 30, "redis-server on the restored dump")
        services.wait_for(lambda: services.chroma_heartbeat(chroma_b.port), 90, "chroma run on the restored dir")
        problems = data.redis_matches(redis_b.port, facts["redis"])
        steps.check(not problems, f"a fresh redis-server on {target}/redis serves DBSIZE "
                                  f"{data.redis_dbsizes(redis_b.port)}, as at backup 1{_why(problems)}")
        problems = data.chroma_matches(chroma_b.port, facts["chroma"])
        steps.check(not problems, f"a fresh chroma on {target}/chroma answers {data.chroma_counts(facts['chroma'])} "
                                  f"and the probes' top-k ids as at backup 1{_why(problems)}")
        for name in ("demo-redis-check", "demo-chroma-check"):
            self.engine.stop_container(name)

    def run(self) -> None:
        data.generate_files(self.data)
        self.steps.say(f"generated documents, processing state and config (with a .env) in {self.data}")
        try:
            self.start_services()
            self.declare()
            with self.stack:
                pids = self.stack.pids()
                self.steps.say(f"agent (pid {pids['agent']}) and controller (pid {pids['controller']}) running on "
                               "127.0.0.1 with mutual TLS; components chroma, redis, documents, processing, config")
                self.scenario()
        finally:
            self.engine.stop()
        self.steps.say("daemons, containers and the Docker engine stopped")


def run(args) -> int:
    wd = workdirs.Workdir(args.workdir, force=args.force)
    wd.prepare()
    steps = _Steps()
    demo = _Demo(wd, steps)
    code = 1
    try:
        demo.run()
    except errors.RagBackupError as exc:
        steps.check(False, exc.message)
        code = exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a failed step is reported with its cause, the work dir kept
        steps.check(False, f"{type(exc).__name__}: {exc}")
    if args.keep or not steps.ok:
        steps.say(f"kept for inspection: {wd.path} (data/, stack/ with the repository, configs and daemon logs, "
                  "logs/dockerd.log, docker/ the engine's state, restored/)")
    else:
        wd.cleanup()
        steps.say(f"removed what the demo created in {wd.path} (use --keep to inspect it)")
    print("demo " + ("PASSED" if steps.ok else "FAILED"), flush=True)
    return 0 if steps.ok else code

"""`ragctl demo`: the whole job end to end on loopback, with nothing to configure.

In: a work directory (created). Out: a generated RAG-like data dir, a CA, an agent
and a controller as separate processes (mTLS gRPC), a local repository; then
backup, change, backup, diff, restore, compare, verify, in-place recovery, and a
report of each step. Exit 0 only if every check passed.
"""
from __future__ import annotations

import filecmp
import json
import os
import random
import shutil
import time

from ragbackup.lazy import lazy_import

# The demo's stack (certificates, subprocesses) loads only when `ragctl demo` runs.
localstack = lazy_import("ragbackup.localstack")


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole job end to end on loopback (no config needed)",
                       description="Start an agent and a controller on 127.0.0.1 with a fresh CA and a local "
                                   "repository under WORKDIR, generate a small RAG-like data directory, and "
                                   "run backup, change, backup, diff, restore, verify and an in-place "
                                   "recovery, printing what each step did.")
    p.add_argument("--workdir", default="rag-backup-demo", help="where everything goes (default: %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep WORKDIR afterwards (default: keep it too; "
                                                       "it is removed and recreated at start)")
    p.set_defaults(func=run, local=True)


def generate(root: str, seed: int = 7) -> None:
    """A small stack's data: documents (text and binary), processing state, config with secrets."""
    rnd = random.Random(seed)
    docs = os.path.join(root, "documents")
    for i in range(240):
        d = os.path.join(docs, f"tenant-{i % 4}", f"batch {i % 7}")
        os.makedirs(d, exist_ok=True)
        if i % 2:
            body = " ".join(rnd.choice(["vector", "embedding", "retrieval", "chunk", "context", "query"])
                            for _ in range(rnd.randint(200, 4000)))
            with open(os.path.join(d, f"doc-{i:04d}.txt"), "w") as f:
                f.write(body)
        else:
            with open(os.path.join(d, f"scan-{i:04d}.pdf"), "wb") as f:
                f.write(rnd.randbytes(rnd.randint(2_000, 200_000)))
    with open(os.path.join(docs, "large-manual.bin"), "wb") as f:
        f.write(rnd.randbytes(6 * 1024 * 1024))
    open(os.path.join(docs, "empty.txt"), "w").close()
    os.makedirs(os.path.join(docs, "empty-dir"))
    with open(os.path.join(docs, "résumé ünïcode.txt"), "w") as f:
        f.write("non-ascii name\n")
    with open(os.path.join(docs, "line\nbreak.txt"), "w") as f:
        f.write("a newline in the name\n")
    os.symlink("tenant-0/batch 0/scan-0000.pdf", os.path.join(docs, "latest.pdf"))
    state = os.path.join(root, "processing")
    os.makedirs(state)
    for i in range(300):
        with open(os.path.join(state, f"job-{i:05d}.json"), "w") as f:
            json.dump({"id": i, "status": rnd.choice(["done", "queued", "failed"]), "chunks": rnd.randint(1, 90)}, f)
    cfg = os.path.join(root, "config")
    os.makedirs(cfg)
    with open(os.path.join(cfg, ".env"), "w") as f:
        f.write("OPENAI_API_KEY=sk-demo-not-a-real-key\nREDIS_PASSWORD=demo-password\nCHROMA_PORT=8000\n")
    os.chmod(os.path.join(cfg, ".env"), 0o600)
    with open(os.path.join(cfg, "docker-compose.yml"), "w") as f:
        f.write("services:\n  chromadb:\n    image: chromadb/chroma\n  redis:\n    image: redis:7\n")


def change(root: str) -> list[str]:
    """A day of use: edit, add and delete documents; returns what was done."""
    docs = os.path.join(root, "documents")
    with open(os.path.join(docs, "tenant-1", "batch 1", "doc-0001.txt"), "a") as f:
        f.write("\nappended paragraph\n")
    with open(os.path.join(docs, "tenant-2", "new-upload.txt"), "w") as f:
        f.write("freshly uploaded document\n" * 100)
    os.unlink(os.path.join(docs, "tenant-0", "batch 2", "scan-0016.pdf"))
    return ["appended to tenant-1/batch 1/doc-0001.txt", "added tenant-2/new-upload.txt",
            "deleted tenant-0/batch 2/scan-0016.pdf"]


def same_tree(a: str, b: str) -> bool:
    """Byte-identical content, same names, same modes and mtimes for regular files."""
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    for name in cmp.common_files:
        pa, pb = os.path.join(a, name), os.path.join(b, name)
        sa, sb = os.lstat(pa), os.lstat(pb)
        if (sa.st_mode, sa.st_mtime_ns) != (sb.st_mode, sb.st_mtime_ns):
            return False
        if not os.path.islink(pa) and not filecmp.cmp(pa, pb, shallow=False):
            return False
        if os.path.islink(pa) and os.readlink(pa) != os.readlink(pb):
            return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


class _Steps:
    def __init__(self):
        self.t0 = time.monotonic()
        self.ok = True

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def check(self, cond: bool, what: str) -> None:
        self.ok &= cond
        self.say(("OK    " if cond else "FAILED ") + what)


def _snapshot_id(stack: localstack.LocalStack, *args: str) -> str:
    return json.loads(stack.ragctl("backup", "--json", *args).stdout)["id"]


def _scenario(stack: localstack.LocalStack, data: str, steps: _Steps) -> None:
    steps.say(f"repository: {stack.ragctl('init').stdout.strip()}")
    first = _snapshot_id(stack, "--reason", "demo-initial")
    steps.say(f"backup 1: {first}")
    pristine = os.path.join(stack.workdir, "pristine")
    shutil.copytree(data, pristine, symlinks=True)
    for what in change(data):
        steps.say(f"change: {what}")
    second = _snapshot_id(stack, "--reason", "demo-after-change")
    m = json.loads(stack.ragctl("show", second, "--json").stdout)
    steps.say(f"backup 2: {second}: read {m['stats']['bytes_read']} of {m['stats']['bytes_total']} bytes, "
              f"sent {m['stats']['bytes_sent']}, added {m['stats']['bytes_stored']} to the repository")
    print(stack.ragctl("snapshots").stdout, end="")
    diff = stack.ragctl("diff", first, second).stdout.strip().splitlines()
    steps.check(any(line.startswith("+ documents/tenant-2/new-upload.txt") for line in diff),
                f"diff shows the changes ({diff[-1]})")
    target = os.path.join(stack.workdir, "restored")
    stack.ragctl("restore", first, "--target", target)
    steps.check(all(same_tree(os.path.join(pristine, c), os.path.join(target, c))
                    for c in ("documents", "processing", "config")),
                f"restore of {first} into {target} is identical to the data at backup 1")
    verify = stack.ragctl("verify", "--read-data")
    steps.check(verify.returncode == 0, f"verify --read-data: {verify.stdout.strip().splitlines()[0]}")
    docs = os.path.join(data, "documents")
    shutil.rmtree(os.path.join(docs, "tenant-3"))
    steps.say("disaster: deleted documents/tenant-3")
    out = stack.ragctl("restore", "latest", "--components", "documents").stdout
    steps.say(out.strip().splitlines()[-1].strip())
    steps.check(os.path.isdir(os.path.join(docs, "tenant-3")), "in-place restore brought documents/tenant-3 back")
    aside = [n for n in os.listdir(data) if n.startswith("documents.corrupted.")]
    steps.check(len(aside) == 1, f"damaged data kept aside as {aside[0] if aside else '(missing)'}")


def run(args) -> int:
    workdir = os.path.abspath(args.workdir)
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    os.makedirs(workdir)
    steps = _Steps()
    data = os.path.join(workdir, "data")
    generate(data)
    steps.say(f"generated RAG-like data in {data}")
    stack = localstack.LocalStack(os.path.join(workdir, "stack"))
    for name, kind in (("documents", "paths"), ("processing", "paths"), ("config", "config")):
        stack.add_component(name, kind, os.path.join(data, name))
    with stack:
        steps.say(f"agent (pid {stack.pids()['agent']}) and controller (pid {stack.pids()['controller']}) "
                  "running on 127.0.0.1 with mutual TLS")
        try:
            _scenario(stack, data, steps)
        except RuntimeError as exc:
            steps.check(False, str(exc))
    steps.say(f"daemons stopped; everything is in {workdir}")
    print("demo " + ("PASSED" if steps.ok else "FAILED"))
    return 0 if steps.ok else 1

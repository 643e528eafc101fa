"""Helpers the reliability cases share: seeded data, daemons armed with a fault, restore checks.

In: a LocalStack (tests/fixtures/stack.py) and a seed. Out: trees that differ per seed,
daemons restarted with a crash point or storage fault armed (and disarmed), and the checks
every case ends with: no snapshot from the failed job, `ragctl verify` passes, every kept
snapshot restores byte-identical.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import time

from fixtures.stack import TreeState, assert_same_tree, build_tree, ragctl_output, snapshot_ids, tree_state
from ragbackup.faults import FAULT_ENV
from ragbackup.localstack import LocalStack
from ragbackup.storage.faults import FAULTS_ENV

KiB = 1024


def seeded_tree(root: str, seed: int) -> None:
    """A tree whose shape and content depend on `seed` (odd names, links, modes, a bigger file)."""
    build_tree(root, n_files=60 + (seed * 37) % 120, seed=seed, big_files=1)


def churn(root: str, seed: int, step: int) -> None:
    """One day's change: `churn.bin` replaced (its old content becomes garbage once forgotten), a file added."""
    rnd = random.Random(seed * 1000 + step)
    with open(os.path.join(root, "churn.bin"), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(200 * KiB, 600 * KiB)))
    with open(os.path.join(root, f"added-{step}.txt"), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(1, 40 * KiB)))


def set_env(st: LocalStack, proc: str, name: str, value: str | None) -> None:
    """Restart daemon `proc` with environment variable `name` set to `value` (None: unset)."""
    if value is None:
        st.env.pop(name, None)
    else:
        st.env[name] = value
    st.stop_process(proc)
    (st.start_controller if proc == "controller" else st.start_agent)()


def arm(st: LocalStack, proc: str, point: str, n: int = 1) -> None:
    """Restart `proc` with crash point `point` armed for its Nth pass."""
    set_env(st, proc, FAULT_ENV, f"{point}:{n}")


def disarm(st: LocalStack, proc: str) -> None:
    """Start `proc` again (it was killed by its crash point) with no fault armed."""
    st.env.pop(FAULT_ENV, None)
    st.stop_process(proc)
    (st.start_controller if proc == "controller" else st.start_agent)()


def storage_faults(st: LocalStack, rules_path: str, rules: list[dict]) -> None:
    """Write the storage fault rules (atomically) the controller started with RAG_BACKUP_STORAGE_FAULTS reads."""
    tmp = rules_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rules, f)
    os.replace(tmp, rules_path)
    time.sleep(0.01)  # a distinct mtime for the next write


def wrap_storage(st: LocalStack, rules_path: str) -> None:
    """Restart the controller with its storage wrapped in FaultyStorage reading `rules_path` (no rules yet)."""
    storage_faults(st, rules_path, [])
    set_env(st, "controller", FAULTS_ENV, rules_path)


def died_at(st: LocalStack, proc: str, point: str, timeout: float = 30) -> bool:
    """True when daemon `proc` was killed by its crash point `point` (SIGKILL, the line in its log)."""
    p = st.procs[proc]
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    with open(os.path.join(st.workdir, f"{proc}.log"), errors="replace") as f:
        reached = f"crash point {point} reached" in f.read()
    return p.returncode == -9 and reached


def verify(st: LocalStack, read_data: bool = False) -> subprocess.CompletedProcess:
    cp = st.ragctl("verify", *(["--read-data"] if read_data else []), check=False, timeout=600)
    assert cp.returncode == 0, f"verify failed: {ragctl_output(cp)}"
    return cp


def backup_id(st: LocalStack, *args: str) -> str:
    cp = st.ragctl("backup", "--json", *args, check=False)
    assert cp.returncode == 0, f"backup failed: {ragctl_output(cp)}"
    return json.loads(cp.stdout)["id"]


def restores_identical(st: LocalStack, kept: dict[str, TreeState], component: str, scratch: str) -> None:
    """Restore every kept snapshot to a fresh --target and compare it with the tree it was taken of."""
    for n, (sid, expected) in enumerate(sorted(kept.items())):
        target = os.path.join(scratch, f"restore-{sid}-{n}")
        cp = st.ragctl("restore", sid, "--target", target, "--components", component, check=False)
        assert cp.returncode == 0, f"restore of {sid} failed: {ragctl_output(cp)}"
        assert_same_tree(expected, os.path.join(target, component), f"snapshot {sid}")


def snapshots(st: LocalStack) -> list[str]:
    return snapshot_ids(st)


def fingerprint(root: str) -> TreeState:
    return tree_state(root)

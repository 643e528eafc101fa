"""The committed generated gRPC code equals what proto/generate.sh produces now."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_generated_code_matches_protos(tmp_path):
    work = tmp_path / "proto"
    shutil.copytree(os.path.join(ROOT, "proto"), work)
    subprocess.run(["bash", str(work / "generate.sh")], check=True, env={**os.environ, "PYTHON": sys.executable})
    gen = work / "ragbackup" / "v1"
    committed = os.path.join(ROOT, "proto", "ragbackup", "v1")
    names = sorted(n for n in os.listdir(gen) if "_pb2" in n)
    assert names == sorted(n for n in os.listdir(committed) if "_pb2" in n)
    for name in names:
        with open(gen / name) as a, open(os.path.join(committed, name)) as b:
            assert a.read() == b.read(), f"{name} drifted: run `bash proto/generate.sh` and commit"

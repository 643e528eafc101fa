"""`ragctl import s3://BUCKET/KEY`: a runbook tarball the old scripts uploaded, imported through the
controller with a tier's endpoint and credentials (real SeaweedFS, real daemons)."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from ragbackup.localstack import LocalStack

TS = "20250102_030000"
SECRET = b"OPENAI_API_KEY=sk-live-4f9a\n"


def _runbook_tarball(root: Path) -> Path:
    """rag-system-backup-TS.tar.gz as the bash runbook makes it: documents.tar.gz, config.tar.gz, .env.backup."""
    (root / "app" / "documents").mkdir(parents=True)
    (root / "app" / "documents" / "a.txt").write_bytes(b"uploaded\n")
    (root / "deploy").mkdir()
    (root / "deploy" / "docker-compose.yml").write_bytes(b"services: {}\n")
    d = root / "out" / f"rag-system-backup-{TS}"
    d.mkdir(parents=True)
    subprocess.run(["tar", "-czf", str(d / "documents.tar.gz"), "-C", str(root / "app"), "documents"], check=True)
    subprocess.run(["tar", "-czf", str(d / "config.tar.gz"), "-C", str(root / "deploy"), "."], check=True)
    (d / ".env.backup").write_bytes(SECRET)
    subprocess.run(["tar", "-czf", f"{d.name}.tar.gz", f"{d.name}/"], cwd=d.parent, check=True)
    return d.parent / f"{d.name}.tar.gz"


@pytest.fixture
def s3_stack(s3_server, tmp_path):
    creds = tmp_path / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {s3_server.access_key}\n"
                     f"aws_secret_access_key = {s3_server.secret_key}\n")
    creds.chmod(0o600)
    bucket = f"runbook-{uuid.uuid4().hex[:12]}"
    s3_server.make_bucket(bucket)
    st = LocalStack(str(tmp_path / "stack"))
    st.add_component("documents", "paths", str(tmp_path / "live-docs"))
    st.add_component("config", "config", str(tmp_path / "live-config"))
    st.extra_toml = (f'[tiers.s3]\nendpoint_url = "{s3_server.endpoint_url}"\nbucket = "{bucket}"\nprefix = "repo"\n'
                     f'credentials = "{creds}"\n')
    try:
        st.start()
        st.ragctl("init")
        yield st, bucket
    finally:
        st.stop()


def test_a_runbook_tarball_in_the_bucket_imports_and_restores(s3_stack, s3_server, tmp_path):
    st, bucket = s3_stack
    tarball = _runbook_tarball(tmp_path / "src")
    key = f"daily/{tarball.name}"
    s3_server.client().upload_file(str(tarball), bucket, key)

    cp = st.ragctl("import", f"s3://{bucket}/{key}")
    sid = cp.stdout.strip()
    assert "imported rag-system-backup-20250102_030000/documents.tar.gz -> documents" in cp.stderr, cp.stderr
    assert "time 2025-01-02T03:00:00Z (from filename)" in cp.stderr, cp.stderr
    m = json.loads(st.ragctl("show", sid, "--json").stdout)
    assert m["reason"] == f"import s3://{bucket}/{key}"
    target = tmp_path / "restored"
    st.ragctl("restore", sid, "--target", str(target))
    assert (target / "documents" / "a.txt").read_bytes() == b"uploaded\n"
    assert (target / "config" / ".env").read_bytes() == SECRET
    assert not list((Path(st.state_dir) / "staging").glob(".import-s3-*"))  # the download is removed


@pytest.mark.parametrize("url, code, message", [
    ("s3://{bucket}/daily/missing.tar.gz", 5, "not found"),
    ("s3://another-bucket/x.tar.gz", 2, "no tier uses bucket 'another-bucket'"),
    ("s3://{bucket}/", 2, "is not s3://BUCKET/KEY"),
])
def test_bad_s3_urls_are_named_with_their_exit_code(s3_stack, url, code, message):
    st, bucket = s3_stack
    cp = st.ragctl("import", url.format(bucket=bucket), check=False)
    assert cp.returncode == code and message in cp.stderr, cp.stderr

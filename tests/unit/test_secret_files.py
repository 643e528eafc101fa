"""Key and password files others may read are refused where they are read, as ssh refuses a loose key."""
from __future__ import annotations

import os

import pytest

from ragbackup import errors, pki, tls
from ragbackup.config import TlsConfig, load_agent_config, load_controller_config
from ragbackup.controller.repositories import make_unlocker
from ragbackup.localstack import LocalStack
from ragbackup.secret import loose_mode, own_groups, read_private

ROOT, OTHER_UID, OTHER_GID = 0, 54321, 54321
FILE = 0o100000


@pytest.mark.parametrize("mode,uid,gid,ok", [
    (0o600, ROOT, 0, True), (0o400, OTHER_UID, OTHER_GID, True), (0o700, ROOT, 0, True),
    (0o644, ROOT, 0, False), (0o604, ROOT, 0, False), (0o602, ROOT, 0, False), (0o601, ROOT, 0, False),
    (0o640, ROOT, "own", True),  # root:rag-backup 0640 read by the controller running as rag-backup
    (0o640, ROOT, OTHER_GID, False),  # another group may read it
    (0o640, OTHER_UID, "own", False),  # only root-owned files may be group-readable
    (0o660, ROOT, "own", False), (0o620, ROOT, "own", False),  # the group may change it
])
def test_loose_mode_table(mode, uid, gid, ok):
    """A secret file's mode: 0600 or 0400, or root-owned 0640 in the reader's own group, nothing else."""
    gid = os.getegid() if gid == "own" else gid
    assert (loose_mode(FILE | mode, uid, gid, own_groups()) is None) == ok


def _secret(path, mode, text=b"s3cret\n"):
    path.write_bytes(text)
    os.chmod(path, mode)
    return str(path)


def test_read_private_refuses_a_loose_file_naming_it_and_the_fix(tmp_path):
    path = _secret(tmp_path / "repository.key", 0o644)
    with pytest.raises(errors.ConfigError) as info:
        read_private(path, "repository key file")
    msg = info.value.message
    assert path in msg and "0644" in msg and f"chmod 600 {path}" in msg and "s3cret" not in msg
    assert info.value.exit_code == 3


def test_group_readable_root_file_of_own_group_accepted_other_group_refused(tmp_path):
    """root:<daemon's group> 0640 is read; the same file in a group the daemon is not in is refused."""
    path = _secret(tmp_path / "pass", 0o640)
    os.chown(path, 0, os.getegid())
    assert read_private(path, "password file") == b"s3cret\n"
    other = next(g for g in range(54321, 60000) if g not in own_groups())
    os.chown(path, 0, other)
    with pytest.raises(errors.ConfigError, match="its group .* may read it"):
        read_private(path, "password file")
    os.chown(path, OTHER_UID, os.getegid())
    with pytest.raises(errors.ConfigError, match="only a file owned by root"):
        read_private(path, "password file")


BASE = """
[controller]
socket = "{d}/ctl.sock"
state_dir = "{d}/state"
[repository]
path = "{d}/repo"
{repo}
[repository.s3]
[tls]
insecure = true
"""


def _config(tmp_path, repo: str) -> str:
    path = tmp_path / "controller.toml"
    path.write_text(BASE.format(d=tmp_path, repo=repo))
    return str(path)


@pytest.mark.parametrize("key", ["password_file", "key_file"])
def test_repository_secret_refused_when_others_may_read_it(tmp_path, key):
    secret = _secret(tmp_path / "secret", 0o644)
    cfg = load_controller_config(_config(tmp_path, f'{key} = "{secret}"'))
    with pytest.raises(errors.ConfigError, match=f"repository .* {secret}: mode 0644: others may read it"):
        make_unlocker(cfg.repository)
    os.chmod(secret, 0o600)
    assert make_unlocker(cfg.repository).secret == b"s3cret"


def test_s3_credential_file_refused_at_load(tmp_path):
    loose = _secret(tmp_path / "aws-secret", 0o644)
    text = BASE.replace("path = ", 'type = "s3"\npath = ').replace(
        "[repository.s3]", f'[repository.s3]\nbucket = "b"\nsecret_access_key_file = "{loose}"')
    path = tmp_path / "controller.toml"
    path.write_text(text.format(d=tmp_path, repo='password = "x"'))
    with pytest.raises(errors.ConfigError) as info:
        load_controller_config(str(path))
    assert str(path) in info.value.message and loose in info.value.message and "chmod 600" in info.value.message
    os.chmod(loose, 0o600)
    assert load_controller_config(str(path)).repository.s3.secret_access_key.reveal() == "s3cret"


def test_secret_file_that_is_not_text_is_a_config_error(tmp_path):
    """A binary secret file named by *_file gave a UnicodeDecodeError traceback."""
    binary = _secret(tmp_path / "aws-secret", 0o600, b"\xff\xfe\x00")
    text = BASE.replace("path = ", 'type = "s3"\npath = ').replace(
        "[repository.s3]", f'[repository.s3]\nbucket = "b"\naccess_key_id_file = "{binary}"')
    path = tmp_path / "controller.toml"
    path.write_text(text.format(d=tmp_path, repo='password = "x"'))
    with pytest.raises(errors.ConfigError, match="not UTF-8"):
        load_controller_config(str(path))


def test_tls_private_key_refused_when_others_may_read_it(tmp_path):
    d = str(tmp_path / "pki")
    pki.create_ca(d)
    cert, key = pki.issue(d, "agent", ["127.0.0.1"])
    cfg = TlsConfig(ca=os.path.join(d, "ca.pem"), cert=cert, key=key)
    assert tls.server_credentials(cfg) is not None and tls.channel_credentials(cfg) is not None
    os.chmod(key, 0o644)
    for make in (tls.server_credentials, tls.channel_credentials):
        with pytest.raises(errors.ConfigError, match=f"TLS key {key}: mode 0644"):
            make(cfg)


def test_everything_the_demo_and_quickstart_write_is_accepted(tmp_path):
    """LocalStack (ragctl demo, the quickstart, the test fixtures) writes its secrets 0600."""
    stack = LocalStack(str(tmp_path / "demo"))
    stack.write_configs()
    ctl = load_controller_config(stack.controller_config)
    agent = load_agent_config(stack.agent_config)
    assert make_unlocker(ctl.repository).secret
    for cfg in (ctl.tls, agent.tls):
        assert tls.server_credentials(cfg) is not None
    for name in os.listdir(stack.pki_dir):
        if name.endswith("-key.pem"):
            read_private(os.path.join(stack.pki_dir, name), "TLS key")

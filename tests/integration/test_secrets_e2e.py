"""A secret from .env never shows in logs, ragctl output or error messages.

In: a `config` component whose .env holds a unique secret, and a redis component (a password-
protected redis-server on the host) whose `password` is that same secret; successful and failing
ragctl runs (diff of a changed .env, a backup after the server's password changed, refused
restores). Out: the secret is absent from agent.log, controller.log, every other file the stack
wrote (its config aside) and the stdout/stderr of every ragctl run; the restored .env holds it.
"""
from __future__ import annotations

import os
import uuid

from fixtures.components_e2e import fill, redis_client


def files_containing(root: str, needle: bytes, skip: set[str]) -> list[str]:
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if path in skip or os.path.islink(path) or not os.path.isfile(path):  # sockets, fifos
                continue
            with open(path, "rb") as f:
                if needle in f.read():
                    found.append(path)
    return found


def test_secret_from_env_appears_in_no_log_or_output(redis_server_factory, e2e_stack, tmp_path):
    secret = f"rb-e2e-{uuid.uuid4().hex}"
    config = tmp_path / "app-config"
    config.mkdir()
    (config / ".env").write_text(f"APP_MODE=production\nREDIS_PASSWORD={secret}\n")
    (config / "settings.toml").write_text("[redis]\nhost = \"127.0.0.1\"\n")
    server = redis_server_factory(password=secret)
    fill(redis_client(server.port, secret), "k", 100)

    stack = e2e_stack()
    stack.declare("config", "config", str(config))
    stack.declare("redis", "redis", server.data_dir, port=server.port, password=secret, timeout_s=5)
    stack.start()
    first = stack.backup()["id"]
    # The .env changes: a new line that also carries the secret, another value changed.
    (config / ".env").write_text(f"APP_MODE=staging\nREDIS_PASSWORD={secret}\n"
                                 f"REDIS_URL=redis://:{secret}@127.0.0.1:{server.port}/0\n")
    second = stack.backup()["id"]
    diff = stack.ragctl("diff", first, second).stdout
    assert "added: REDIS_URL" in diff and "changed: APP_MODE" in diff, diff
    stack.ragctl("diff", first, second, "--json")
    stack.ragctl("snapshots", "--json")
    stack.ragctl("show", "latest")
    assert stack.facts("redis")["dbsize"] == {"db0": 100}
    stack.ragctl("health", expect=None)
    target = tmp_path / "restored"
    stack.restore("--target", str(target))
    assert secret in (target / "config" / ".env").read_text(), "the secret itself is backed up and restored"

    # Failures: the server's password changes under the configured one; refused restores.
    redis_client(server.port, secret).config_set("requirepass", f"changed-{uuid.uuid4().hex}")
    failed = stack.ragctl("backup", expect=7)
    assert "authentication failed" in failed.stderr and f"127.0.0.1:{server.port}" in failed.stderr
    stack.ragctl("backup", "--json", "--components", "redis", expect=7)
    stack.ragctl("restore", "latest", "--components", "redis", expect=2)  # in place needs a service
    stack.ragctl("restore", "latest", "--target", str(target), expect=2)  # target not empty
    stack.ragctl("show", "no-such-snapshot", expect=5)
    stack.stop()

    assert len(stack.runs) >= 10
    assert secret not in stack.outputs()
    logs = [os.path.join(stack.workdir, n) for n in ("agent.log", "controller.log")]
    assert all(os.path.getsize(p) > 0 for p in logs)
    controller_toml = os.path.join(stack.workdir, "controller.toml")
    assert files_containing(stack.workdir, secret.encode(), skip=set()) == [controller_toml], \
        "only the config holds the secret (the component's password)"

"""S3 timeouts and deadlines of [repository.s3] and [tiers.NAME]: a finite number of seconds > 0, or exit 3.

In: controller configs whose timeout is negative, zero, nan, inf or beyond a day. Out: ConfigError
(exit 3) at load naming the file, the table and the key; a controller started on such a file exits 3.
"""
import subprocess
import sys

import pytest

from ragbackup import errors
from ragbackup.config import load_controller_config

S3_PRIMARY = """
[controller]
state_dir = "/tmp/x"
[repository]
type = "s3"
password = "hunter2-secret"
[repository.s3]
bucket = "b"
{line}
[tls]
insecure = true
"""
TIER = """
[controller]
state_dir = "/tmp/x"
[repository]
path = "/tmp/repo"
password = "hunter2-secret"
[tls]
insecure = true
[tiers.s3]
bucket = "b"
{line}
"""
BAD = ["-1", "0", "0.0", "nan", "inf", "-inf", "86400"]


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("template,table,key", [
    (S3_PRIMARY, "repository.s3", "connect_timeout"), (S3_PRIMARY, "repository.s3", "read_timeout"),
    (S3_PRIMARY, "repository.s3", "deadline"), (TIER, "tiers.s3", "connect_timeout"),
    (TIER, "tiers.s3", "read_timeout"),
])
def test_bad_timeouts_are_refused_naming_the_key(tmp_path, template, table, key, value):
    path = _write(tmp_path, template.format(line=f"{key} = {value}"))
    with pytest.raises(errors.ConfigError) as exc:
        load_controller_config(path)
    assert exc.value.exit_code == 3
    assert f"{path}: [{table}] {key}: expected a finite number > 0" in exc.value.message, exc.value.message


@pytest.mark.parametrize("line,message", [
    ("max_attempts = 0", "[repository.s3] max_attempts: expected a whole number 1..10"),
    ("max_attempts = 2.5", "[repository.s3] max_attempts: expected a whole number"),
    ('deadline = "1m"', "[repository.s3] deadline: expected a number"),
])
def test_bad_attempts_and_deadline_types(tmp_path, line, message):
    with pytest.raises(errors.ConfigError) as exc:
        load_controller_config(_write(tmp_path, S3_PRIMARY.format(line=line)))
    assert message in exc.value.message


def test_defaults_and_values_load(tmp_path):
    s3 = load_controller_config(_write(tmp_path, S3_PRIMARY.format(line=""))).repository.s3
    assert (s3.connect_timeout, s3.read_timeout, s3.max_attempts, s3.deadline) == (5.0, 60.0, 2, 60.0)
    s3 = load_controller_config(_write(tmp_path, S3_PRIMARY.format(
        line="connect_timeout = 1\nread_timeout = 2.5\nmax_attempts = 1\ndeadline = 10"))).repository.s3
    assert (s3.connect_timeout, s3.read_timeout, s3.max_attempts, s3.deadline) == (1.0, 2.5, 1, 10.0)


def test_the_controller_refuses_a_nan_timeout_with_exit_3(tmp_path):
    path = _write(tmp_path, S3_PRIMARY.format(line="read_timeout = nan"))
    cp = subprocess.run([sys.executable, "-m", "ragbackup.controller.serve", "--config", path],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 3, (cp.returncode, cp.stderr)
    assert "[repository.s3] read_timeout" in cp.stderr and "Traceback" not in cp.stderr, cp.stderr

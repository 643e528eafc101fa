"""End-to-end fixtures: the .deb built from this checkout and a systemd container (tests/fixtures/systemd_image.py)."""
import os
import subprocess
from pathlib import Path

import pytest
from fixtures.systemd_image import systemd_container, systemd_image  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def deb_package(tmp_path_factory) -> str:
    """Path of the .deb `bash packaging/deb/build.sh` makes (RAG_E2E_DEB: use a built one instead)."""
    if os.environ.get("RAG_E2E_DEB"):
        return os.environ["RAG_E2E_DEB"]
    out = tmp_path_factory.mktemp("deb")
    cp = subprocess.run(["bash", str(REPO / "packaging/deb/build.sh")], env={**os.environ, "RAG_DEB_OUT": str(out)},
                        capture_output=True, text=True, timeout=900)
    assert cp.returncode == 0, cp.stderr[-3000:]
    return cp.stdout.strip().splitlines()[-1]

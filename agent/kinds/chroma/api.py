"""Reaching one Chroma: where it is, its v2 REST API, its version, and when it answers.

In: a Component of kind chroma (its typed ChromaOptions) and the persist dir on this host. Out:
a ChromaTarget, the few REST calls capture and verification need (errors typed as Unavailable or
Unhealthy naming the server), the version checks that keep a restore from handing a server files
of another major version, and the heartbeat waited for with agent/ready.py.
"""
from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from typing import Any

from ragbackup import errors
from ragbackup.component_options import ChromaOptions
from ragbackup.lazy import lazy_import

from ragbackup.agent import ready
from ragbackup.agent.component import Component

# HTTP (and with it ssl) is loaded on the first Chroma capture, not by every agent.
urllib_error = lazy_import("urllib.error")
urllib_request = lazy_import("urllib.request")


@dataclasses.dataclass(frozen=True)
class ChromaTarget:
    """Where one Chroma keeps its data on this host and where its HTTP API answers."""

    persist_dir: str
    url: str = "http://127.0.0.1:8000"
    tenant: str = "default_tenant"
    database: str = "default_database"
    owner: tuple[int, int] = (1000, 1000)
    probes: int = 3
    top_k: int = 5
    timeout_s: float = 30.0


def target_of(comp: Component, persist_dir: str = "") -> ChromaTarget:
    """The ChromaTarget of a component (its persist dir on this host: `persist_dir`, else its path)."""
    o = comp.typed(ChromaOptions)
    return ChromaTarget(persist_dir=persist_dir or comp.path, url=o.url, tenant=o.tenant, database=o.database,
                        owner=o.owner, probes=o.probes, top_k=o.top_k, timeout_s=o.timeout_s)


# ---------------------------------------------------------------- versions


def major_version(version: str) -> int:
    """The major number of `1.5.9`, `v0.6.3`, `1.0.0-rc1`; UsageError if there is none."""
    match = re.match(r"\s*v?(\d+)(?:\.|$)", str(version))
    if not match:
        raise errors.UsageError(f"not a version number: {version!r}")
    return int(match.group(1))


def _series(version: str) -> tuple[int, ...]:
    """Versions that share on-disk formats: the major, and for 0.x also the minor (0.5 vs 0.6)."""
    major = major_version(version)
    if major != 0:
        return (major,)
    minor = re.match(r"\s*v?0\.(\d+)", str(version))
    return (0, int(minor.group(1)) if minor else -1)


def check_version_compatible(snapshot_version: str, running_version: str, force: bool) -> str | None:
    """None if the running Chroma reads the snapshot's files; a warning if not but `force`.

    Otherwise UsageError: a persist dir from another major (or another 0.x minor) can
    crash or silently misread (field reports of segfaults after version mismatches).
    """
    if _series(snapshot_version) == _series(running_version):
        return None
    message = (f"snapshot was taken from Chroma {snapshot_version}, the server runs {running_version}:"
               " a different major version may not read these files")
    if force:
        return message + " (restoring anyway: forced)"
    raise errors.UsageError(message + "; run the same major version or restore with --force")


# ---------------------------------------------------------------- HTTP


def _http(url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """JSON from GET (no body) or POST `url`; Unavailable/Unhealthy on failure."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib_request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib_request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib_error.HTTPError as err:
        detail = err.read()[:300].decode(errors="replace")
        raise errors.Unhealthy(f"chroma {_origin(url)}: HTTP {err.code} for {_path(url)}: {detail}") from None
    except (urllib_error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise errors.Unavailable(f"chroma {_origin(url)}: {reason}") from None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


class _Api:
    """The few v2 REST calls we need, for one tenant/database."""

    def __init__(self, target: ChromaTarget):
        self.base = target.url.rstrip("/") + "/api/v2"
        quote = urllib.parse.quote
        self.db = f"{self.base}/tenants/{quote(target.tenant)}/databases/{quote(target.database)}"
        self.timeout = target.timeout_s

    def version(self) -> str:
        return str(_http(f"{self.base}/version", timeout=self.timeout))

    def collections(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = _http(f"{self.db}/collections?limit=100&offset={len(out)}", timeout=self.timeout)
            out.extend(page)
            if len(page) < 100:
                return out

    def count(self, cid: str) -> int:
        return int(_http(f"{self.db}/collections/{cid}/count", timeout=self.timeout))

    def record_at(self, cid: str, offset: int) -> tuple[str, list[float]]:
        got = _http(f"{self.db}/collections/{cid}/get",
                    {"limit": 1, "offset": offset, "include": ["embeddings"]}, self.timeout)
        return got["ids"][0], got["embeddings"][0]

    def query(self, cid: str, vector: list[float], n_results: int) -> tuple[list[str], list[float]]:
        got = _http(f"{self.db}/collections/{cid}/query",
                    {"query_embeddings": [vector], "n_results": n_results, "include": ["distances"]},
                    self.timeout)
        return got["ids"][0], got["distances"][0]


def server_version(target: ChromaTarget) -> str:
    """The running server's version (recorded with the facts; a restore checks it)."""
    return _Api(target).version()


def heartbeat(url: str, timeout_s: float = 5.0) -> bool:
    """True when `/api/v2/heartbeat` answers; Unavailable/Unhealthy when it does not."""
    _http(url.rstrip("/") + "/api/v2/heartbeat", timeout=timeout_s)
    return True


def wait_heartbeat(url: str, timeout_s: float) -> None:
    """Poll the heartbeat until it answers; NotReady (an Unavailable) after `timeout_s`."""
    ready.wait_until(lambda: heartbeat(url, min(5.0, timeout_s)), timeout_s, f"chroma {_origin(url)} heartbeat")

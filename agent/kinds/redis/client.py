"""Reaching one Redis: where it is, a checked connection, and its errors typed without the password.

In: a Component of kind redis (its typed RedisOptions) and the data dir on this host. Out: a
RedisTarget, a redis-py client that has answered PING, and `translated`, which turns redis-py's
errors into Unavailable, Unhealthy or ConfigError naming host:port and never the password.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from ragbackup import errors
from ragbackup.component_options import RedisOptions
from ragbackup.lazy import lazy_import
from ragbackup.secret import Secret

from ragbackup.agent.component import Component

redis = lazy_import("redis")


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """How to reach one Redis and where its `dir` is on this host."""

    data_dir: str
    host: str = "127.0.0.1"
    port: int = 6379
    password: Secret | None = None
    username: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    rdb_filename: str = "dump.rdb"
    owner: tuple[int, int] = (999, 999)
    timeout_s: float = 300.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def target_of(comp: Component, data_dir: str = "") -> RedisTarget:
    """The RedisTarget of a component (its data dir on this host: `data_dir`, else its path)."""
    o = comp.typed(RedisOptions)
    return RedisTarget(
        data_dir=data_dir or comp.path, host=o.host, port=o.port, password=comp.password(),
        username=o.username or None, tls=o.tls, tls_ca=o.tls_ca or None, tls_cert=o.tls_cert or None,
        tls_key=o.tls_key or None, rdb_filename=o.rdb_filename, owner=o.owner, timeout_s=o.timeout_s)


def _scrub(text: str, password: Secret | None) -> str:
    if password and password.reveal() in text:
        return text.replace(password.reveal(), "***")
    return text


@contextlib.contextmanager
def translated(where: str, password: Secret | None = None) -> Iterator[None]:
    """Turn redis-py errors into typed errors naming host:port and never the password."""
    try:
        yield
    except redis.AuthenticationError as err:
        raise errors.Unavailable(f"redis {where}: authentication failed: {_scrub(str(err), password)}") from None
    except (redis.ConnectionError, redis.TimeoutError) as err:
        raise errors.Unavailable(f"redis {where}: {_scrub(str(err), password)}") from None
    except redis.ResponseError as err:
        text = _scrub(str(err), password)
        if text.startswith("NOPERM"):
            raise errors.ConfigError(f"redis {where}: the configured user lacks a permission: {text}") from None
        raise errors.Unhealthy(f"redis {where}: {text}") from None


def client_where(client: redis.Redis) -> tuple[str, Secret | None]:
    kw = client.connection_pool.connection_kwargs
    password = kw.get("password")
    return f"{kw.get('host')}:{kw.get('port')}", Secret(password) if password else None


@contextlib.contextmanager
def client_errors(client: redis.Redis) -> Iterator[None]:
    where, password = client_where(client)
    with translated(where, password):
        yield


def connect(target: RedisTarget) -> redis.Redis:
    """A client for `target` that has answered PING; Unavailable otherwise.

    redis-py's own retries (3, with backoff, by default in 6+) are off: callers that
    wait (wait_ready, the BGSAVE polls) have their own deadlines.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    tls = {}
    if target.tls:
        tls = {"ssl": True, "ssl_ca_certs": target.tls_ca, "ssl_certfile": target.tls_cert,
               "ssl_keyfile": target.tls_key}
    client = redis.Redis(
        host=target.host, port=target.port, username=target.username,
        password=target.password.reveal() if target.password else None,
        socket_timeout=min(target.timeout_s, 30.0), socket_connect_timeout=min(target.timeout_s, 10.0),
        decode_responses=True, retry=Retry(NoBackoff(), 0), **tls,
    )
    with translated(target.where, target.password):
        client.ping()
    return client

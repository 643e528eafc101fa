"""systemd's notify protocol for both daemons: READY, STATUS, WATCHDOG and STOPPING.

In: $NOTIFY_SOCKET and $WATCHDOG_USEC from systemd (a path or an @abstract name), and a
liveness probe of the daemon's real work. Out: datagrams to that socket; `Watchdog.run`
pings only while the probe answers, so a hung daemon is killed and restarted by systemd.
Native protocol: the `sdnotify` package ignores WATCHDOG_USEC and hides send errors.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent import futures
from typing import Callable

log = logging.getLogger("ragbackup.notify")

DEFAULT_INTERVAL = 5.0  # seconds between probes when systemd asks for no watchdog


class Notifier:
    """Sends `KEY=value` lines to systemd; does nothing outside systemd (no $NOTIFY_SOCKET)."""

    def __init__(self, env: dict | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else 0.0
        self._warned = False

    def send(self, *lines: str) -> bool:
        """Never blocks: a full socket queue (systemd busy; a unix datagram queue holds 10 by
        default) drops the message rather than stall the job whose start or end it reports."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
            return True
        except OSError as exc:
            if not self._warned:  # once: a broken socket must not flood the log every ping
                log.warning("cannot notify systemd on %s: %s", self.address.lstrip("\0"), exc)
                self._warned = True
            return False

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")


class Watchdog:
    """Pings systemd at least every 2/3 of WatchdogSec, each ping earned by a probe that went through the
    daemon's own machinery (its gRPC worker pool, its job records) within that half."""

    def __init__(self, notifier: Notifier, pool: futures.Executor, probe: Callable[[], object]):
        self.notifier, self.pool, self.probe = notifier, pool, probe
        # a probe wait plus a sleep of a third each: pings at most 2/3 of WatchdogSec apart
        self.interval = notifier.watchdog_s / 3 if notifier.watchdog_s else DEFAULT_INTERVAL

    def alive(self) -> bool:
        """True when the probe ran on the pool and returned within one interval."""
        try:
            self.pool.submit(self.probe).result(timeout=self.interval)
            return True
        except futures.TimeoutError:
            return False
        except RuntimeError:  # the pool is shut down: the daemon is stopping
            return False
        except Exception as exc:  # noqa: BLE001 -- any probe failure means "not alive": logged, never raised
            log.warning("liveness probe failed: %s", exc)
            return False

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: probe, and ping when the probe answered."""
        while not stop.wait(self.interval):
            if self.notifier.watchdog_s and self.alive():
                self.notifier.send("WATCHDOG=1")
            elif self.notifier.watchdog_s:
                log.warning("liveness probe did not answer within %.1fs: no watchdog ping", self.interval)

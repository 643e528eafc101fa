"""The checks behind `ragctl config check`: both daemons' TOML files, the files they name, the
certificates, the agents and the schedule against the RPO, before a reload.

In: the controller and agent config paths. Out: a list of Findings (level ok | warn | error,
name, detail); nothing is changed. Secret values are never read into a finding.
"""
from __future__ import annotations

import datetime as _dt
import grp
import os
import stat
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtensionOID

from ragbackup import clock, errors, secret, tls, unixsock
from ragbackup.config import AgentConfig, ControllerConfig, TlsConfig, load_agent_config, load_controller_config
from ragbackup.controller.policy.schedule import rpo_findings, span_text, worst_gap
from ragbackup.v1 import agent_pb2, agent_pb2_grpc

OK, WARN, ERROR = "ok", "warn", "error"
CERT_WARN_DAYS = 30
AGENT_TIMEOUT = 5.0
DAEMON_GROUP = "rag-backup"  # the packaged controller's user and group (packaging/deb)


@dataclass(frozen=True)
class Finding:
    level: str
    name: str
    detail: str

    def as_dict(self) -> dict:
        return {"level": self.level, "check": self.name, "detail": self.detail}


# --------------------------------------------------------------------------- files


def secret_file(name: str, path: str) -> Finding:
    """A key or password file: present, readable, and not readable or writable by others."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return Finding(ERROR, name, f"{path}: {exc.strerror}")
    mode = stat.S_IMODE(st.st_mode)
    why = secret.loose_mode(st.st_mode, st.st_uid, st.st_gid, secret.own_groups() | _daemon_group())
    if why is not None:
        return Finding(ERROR, name, f"{path}: {why}; the daemons refuse it (chmod 600 {path})")
    if not os.access(path, os.R_OK):
        return Finding(WARN, name, f"{path}: mode {mode:04o}, not readable by this user (the daemon's may differ)")
    return Finding(OK, name, f"{path}: mode {mode:04o}")


def _daemon_group() -> set[int]:
    """The packaged controller's group (it may read a root-owned 0640 secret of that group)."""
    try:
        return {grp.getgrnam(DAEMON_GROUP).gr_gid}
    except KeyError:
        return set()


def directory(name: str, path: str, must_exist: bool) -> Finding:
    if os.path.isdir(path):
        return Finding(OK, name, f"{path} exists")
    if os.path.exists(path):
        return Finding(ERROR, name, f"{path} exists and is not a directory")
    parent = os.path.dirname(path.rstrip("/")) or "/"
    level = ERROR if must_exist or not os.path.isdir(parent) else WARN
    return Finding(level, name, f"{path} does not exist" + ("" if level == ERROR else " (created at start)"))


# --------------------------------------------------------------------------- certificates


def _load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
           [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def certificate(name: str, path: str, ca_path: str, now: _dt.datetime, hosts: tuple[str, ...] = ()) -> Finding:
    """Valid now (and for CERT_WARN_DAYS more), issued by the CA, naming `hosts` when given."""
    try:
        cert, ca = _load_cert(path), _load_cert(ca_path)
    except (OSError, ValueError) as exc:
        return Finding(ERROR, name, f"cannot read {path} or {ca_path}: {getattr(exc, 'strerror', None) or exc}")
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        return Finding(ERROR, name, f"{path}: valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                                    f"{cert.not_valid_after_utc:%Y-%m-%d}, not now")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        return Finding(ERROR, name, f"{path} is not issued by the CA {ca_path} ({type(exc).__name__})")
    names = _names(cert)
    missing = [h for h in hosts if h not in names]
    if missing:
        return Finding(ERROR, name, f"{path} does not name {', '.join(missing)} (it names {', '.join(names)})")
    days = (cert.not_valid_after_utc - now).days
    return Finding(WARN if days < CERT_WARN_DAYS else OK, name,
                   f"{path}: issued by the CA, names {', '.join(names) or '-'}, expires in {days} days")


def tls_findings(who: str, cfg: TlsConfig, now: _dt.datetime, hosts: tuple[str, ...] = ()) -> list[Finding]:
    if cfg.insecure:
        return [Finding(WARN, f"{who} tls", "insecure = true: connections are not authenticated")]
    if not (cfg.ca and cfg.cert and cfg.key):
        return []
    return [certificate(f"{who} certificate", cfg.cert, cfg.ca, now, hosts), secret_file(f"{who} tls key", cfg.key)]


# --------------------------------------------------------------------------- controller


def _agent_reachable(cfg: ControllerConfig, name: str) -> Finding:
    ref = cfg.agents[name]
    try:
        channel = tls.open_channel(ref.address, cfg.tls, ref.server_name)
    except errors.RagBackupError as exc:
        return Finding(ERROR, f"agent {name}", exc.message)
    try:
        reply = agent_pb2_grpc.AgentStub(channel).Health(agent_pb2.HealthRequest(), timeout=AGENT_TIMEOUT)
    except grpc.RpcError as err:
        detail = err.details() or err.code().name
        return Finding(ERROR, f"agent {name}", f"{ref.address} unreachable: {detail}")
    finally:
        channel.close()
    return Finding(OK, f"agent {name}", f"{ref.address} answers ({reply.hostname}, version {reply.version})")


def schedule_findings(cfg: ControllerConfig) -> list[Finding]:
    problems = rpo_findings(cfg.schedule, cfg.objectives)
    if problems:
        return [Finding(WARN, "schedule vs RPO", p) for p in problems]
    return [Finding(OK, "schedule vs RPO", f"backups every {span_text(worst_gap(cfg.schedule))} meet the RPO "
                                           f"of {span_text(cfg.objectives.rpo)}")]


def _repository_findings(cfg: ControllerConfig) -> list[Finding]:
    repo, out = cfg.repository, []
    if repo.type == "local":
        out.append(directory("repository path", repo.path, must_exist=False))
    for key, path in (("password_file", repo.password_file), ("key_file", repo.key_file)):
        if path:
            out.append(secret_file(f"repository {key}", path))
    return out


def controller_findings(path: str | None, reach_agents: bool, now: _dt.datetime) -> list[Finding]:
    try:
        cfg = load_controller_config(path)
    except errors.ConfigError as exc:
        return [Finding(ERROR, "controller config", exc.message)]
    out = [Finding(OK, "controller config", f"{cfg.source}: {len(cfg.components)} component(s), "
                                            f"{len(cfg.agents)} agent(s)")]
    out.append(directory("state_dir", cfg.state_dir, must_exist=False))
    out += _repository_findings(cfg)
    out += tls_findings("controller", cfg.tls, now)
    out += schedule_findings(cfg)
    if reach_agents:
        out += [_agent_reachable(cfg, name) for name in cfg.agents]
    return out


# --------------------------------------------------------------------------- agent


def _listen_host(cfg: AgentConfig) -> tuple[str, ...]:
    if unixsock.is_unix(cfg.listen):
        return ()
    host = cfg.listen.rpartition(":")[0].strip("[]")
    return () if host in ("", "0.0.0.0", "::") else (host,)


def agent_findings(path: str, now: _dt.datetime) -> list[Finding]:
    try:
        cfg = load_agent_config(path)
    except errors.ConfigError as exc:
        return [Finding(ERROR, "agent config", exc.message)]
    out = [Finding(OK, "agent config", f"{cfg.source}: listen {cfg.listen}")]
    for p in cfg.allowed_paths:
        out.append(directory("allowed path", p, must_exist=True) if os.path.exists(p) or p == "/" else
                   Finding(WARN, "allowed path", f"{p} does not exist on this host"))
    out += tls_findings("agent", cfg.tls, now, _listen_host(cfg))
    return out


def check(controller: str | None, agent: str | None, reach_agents: bool = True) -> list[Finding]:
    now = clock.SYSTEM.now()
    out = controller_findings(controller, reach_agents, now)
    if agent:
        out += agent_findings(agent, now)
    return out

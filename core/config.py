"""TOML configuration of the controller and the agent, validated at load.

In: /etc/rag-backup/controller.toml or agent.toml (path from flag or env). Out:
frozen dataclasses; any problem raises ConfigError naming the file, the key and
what was expected. Secrets are `Secret`s. Commented examples: packaging/*.toml.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import sys
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ragbackup.component_options import PathsOptions, parse_options
from ragbackup.errors import ConfigError
from ragbackup.secret import Secret, read_private
from ragbackup.schedule import Objectives, Schedule, parse_span
from ragbackup.tier_options import ArchiveConfig, ObjectLockConfig, parse_archive, parse_kind, parse_object_lock
from ragbackup import unixsock

DEFAULT_CONTROLLER_CONFIG = "/etc/rag-backup/controller.toml"
# zstd level of new repositories: on a RAG dataset level 2 stores 0.4% more than
# level 3 for a fifth less compression CPU (docs/PERFORMANCE.md); chunks under
# 64 KiB and shuffled vectors use level 1 either way.
DEFAULT_COMPRESSION_LEVEL = 2
DEFAULT_AGENT_CONFIG = "/etc/rag-backup/agent.toml"
CONTROLLER_CONFIG_ENV = "RAG_BACKUP_CONTROLLER_CONFIG"
AGENT_CONFIG_ENV = "RAG_BACKUP_AGENT_CONFIG"
COMPONENT_KINDS = ("paths", "config", "redis", "chroma")
_COMPONENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MISSING = object()


class _Section:
    """Typed access to one TOML table with errors that name file and key."""

    def __init__(self, path: str, name: str, data: Any):
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        self.path, self.name, self.data = path, name, data

    def _fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.path}: [{self.name}] {key}: expected {expected}")

    def get(self, key: str, typ: type | tuple, default: Any = _MISSING, expected: str = "") -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.path}: [{self.name}] {key}: required key is missing")
            return default
        value = self.data[key]
        if isinstance(value, bool) and typ in (int, float):
            raise self._fail(key, expected or typ.__name__)
        if not isinstance(value, typ):
            raise self._fail(key, expected or getattr(typ, "__name__", str(typ)))
        return value

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self.get(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings")
        return tuple(value)

    def table(self, key: str) -> "_Section":
        name = key if self.name == "root" else f"{self.name}.{key}"
        return _Section(self.path, name, self.get(key, dict, {}))

    def secret(self, key: str) -> Secret | None:
        """A secret given inline (`key`) or in a file (`key_file`)."""
        if f"{key}_file" in self.data:
            return Secret(_read_secret_file(self.path, self.get(f"{key}_file", str)))
        value = self.get(key, str, None)
        return Secret(value) if value is not None else None

    def unknown_keys(self, allowed: set[str]) -> None:
        extra = sorted(set(self.data) - allowed)
        if extra:
            raise ConfigError(f"{self.path}: [{self.name}] unknown key(s): {', '.join(extra)} "
                              f"(allowed: {', '.join(sorted(allowed))})")


def _read_secret_file(config_path: str, path: str) -> str:
    """A secret's file (e.g. an S3 access key), refused when others may read it."""
    data = read_private(path, "secret file", f"{config_path}: ")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path}: secret file {path}: not UTF-8 text") from None


@dataclass(frozen=True)
class TlsConfig:
    ca: str = ""
    cert: str = ""
    key: str = ""
    insecure: bool = False


@dataclass(frozen=True)
class S3Config:
    bucket: str
    endpoint_url: str | None = None
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 2  # requests per call (botocore), each bounded by the timeouts
    deadline: float = 60.0  # seconds after an operation's start past which no retry starts (docs/OPERATIONS.md)


@dataclass(frozen=True)
class RepositoryConfig:
    type: str
    path: str = ""
    password: Secret | None = None
    password_file: str = ""
    key_file: str = ""
    s3: S3Config | None = None
    pack_size_mib: int = 32
    compression_level: int = DEFAULT_COMPRESSION_LEVEL


@dataclass(frozen=True)
class AgentRef:
    name: str
    address: str
    server_name: str = ""


@dataclass(frozen=True)
class ComponentConfig:
    name: str
    kind: str
    agent: str
    path: str = ""
    exclude: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)  # as written in the file
    settings: PathsOptions = field(default_factory=PathsOptions)  # `options` typed at load; sent as is


@dataclass(frozen=True)
class AppService:
    """An application service stopped during an in-place restore and started after it."""

    agent: str
    service: str  # "docker:NAME", "docker:PROJECT/SERVICE" or "systemd:UNIT"


@dataclass(frozen=True)
class ImportConfig:
    """[import]: limits on tarballs `ragctl import` accepts."""

    max_expansion_ratio: int = 1000  # a sparse member's size over the data it holds; 0: no limit


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: where the controller serves /metrics and its status page ("" : not served)."""

    listen: str = ""


@dataclass(frozen=True)
class AlertsConfig:
    """[alerts]: thresholds of the controller's own alert evaluation (and an optional webhook)."""

    size_deviation: float = 0.20  # |size - baseline| / baseline
    max_backup_age_hours: float = 25.0
    min_free_ratio: float = 0.10
    failure_window_hours: float = 1.0  # a failed job fires for this long unless a later one succeeds
    drill_max_age_days: float = 35.0
    max_replication_lag_hours: float = 26.0
    webhook: str = ""


@dataclass(frozen=True)
class RetentionConfig:
    """[retention]: what `ragctl forget` keeps, how prune repacks, and whether both follow each backup.

    Durations stay text here (e.g. "30d"); the retention policy parses them. Counts: 0 keeps
    nothing by that rule, -1 every bucket.
    """

    keep_within: str = ""
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    rpo: str = ""
    timezone: str = "UTC"
    repack_pct: int = 50  # repack a pack when more than this % of it is garbage
    reader_wait: float = 600.0  # seconds prune waits for restores etc. reading the packs it replaces
    forget_after_backup: bool = False
    prune_after_backup: bool = False

    @property
    def has_policy(self) -> bool:
        return bool(self.keep_within or self.keep_last or self.keep_hourly or self.keep_daily or self.keep_weekly
                    or self.keep_monthly or self.keep_yearly)


TIER_RETENTION_DEFAULT = "90d"  # a tier's keep_within when its [tiers.NAME.retention] sets no rule
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "REDUCED_REDUNDANCY",
                   "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")


@dataclass(frozen=True)
class TierConfig:
    """[tiers.NAME]: an offsite copy of the repository in an S3 bucket, kept in sync by replication.

    `feed` names where replication copies from: "primary" (the controller's own repository) or
    another tier (server-side CopyObject when both share an endpoint). Credentials come from an
    AWS shared-credentials file (`credentials`, `profile`) or, when none is given, the standard
    AWS chain; the keys are Secrets, never logged and never sent to agents.
    """

    name: str
    bucket: str
    endpoint_url: str | None = None
    prefix: str = ""
    region: str = "us-east-1"
    credentials: str = ""  # path of the shared-credentials file ("" : standard AWS chain)
    profile: str = "default"
    access_key_id: Secret | None = None  # read from `credentials` at load
    secret_access_key: Secret | None = None
    feed: str = "primary"
    storage_class_packs: str = "STANDARD_IA"
    storage_class_metadata: str = "STANDARD"  # index, snapshots, keys, config, dicts
    retention: RetentionConfig = RetentionConfig(keep_within=TIER_RETENTION_DEFAULT)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3  # tries per S3 request (botocore), each bounded by the timeouts
    max_concurrency: int = 4  # objects copied at once
    bandwidth_limit: int = 0  # bytes/s of uploads, 0: no limit
    restore_memory: int = 256 * 1024 * 1024  # bytes of whole packs a restore from this tier holds (PackCache)
    read_ahead: int = 2  # packs a restore from this tier fetches ahead of each component's reads; 0: none
    kind: str = "copy"  # "copy": the deduplicated repository; "archive": self-contained sets (docs/ARCHIVE.md)
    object_lock: ObjectLockConfig | None = None  # [tiers.NAME.object_lock] (docs/OFFSITE.md)
    archive: ArchiveConfig | None = None  # [tiers.NAME.archive], set when kind = "archive"

    def storage_classes(self) -> dict[str, str]:
        """Storage class by key prefix (S3Settings.storage_class_for): packs apart from metadata."""
        meta = self.storage_class_metadata
        return {"data/": self.storage_class_packs, "index/": meta, "snapshots/": meta, "keys/": meta,
                "config": meta, "dicts/": meta}


@dataclass(frozen=True)
class ControllerConfig:
    source: str
    socket: str
    socket_group: str
    state_dir: str
    listen: str
    hostname: str
    repository: RepositoryConfig
    tls: TlsConfig
    agents: dict[str, AgentRef]
    components: dict[str, ComponentConfig]
    app_services: tuple[AppService, ...] = ()
    imports: ImportConfig = ImportConfig()
    metrics: MetricsConfig = MetricsConfig()
    alerts: AlertsConfig = AlertsConfig()
    retention: RetentionConfig = RetentionConfig()
    schedule: Schedule = Schedule()
    objectives: Objectives = Objectives()
    tiers: dict[str, TierConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    source: str
    listen: str
    cache_dir: str
    staging_dir: str
    allowed_paths: tuple[str, ...]
    workers: int
    tls: TlsConfig


def _load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied reading the configuration") from None
    except OSError as exc:  # a directory, an I/O error
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _tls(root: _Section, addresses: list[str]) -> TlsConfig:
    """[tls]; its ca, cert and key are required when one of `addresses` is not a unix socket.

    The unix:PATH addresses among them are checked too (ConfigError naming the address).
    """
    t = root.table("tls")
    t.unknown_keys({"ca", "cert", "key", "insecure"})
    cfg = TlsConfig(t.get("ca", str, ""), t.get("cert", str, ""), t.get("key", str, ""),
                    t.get("insecure", bool, False))
    for address in filter(unixsock.is_unix, addresses):
        if (why := unixsock.problem(address)) is not None:
            raise ConfigError(f"{root.path}: {why}")
    needed = [a for a in addresses if a and not unixsock.is_unix(a)]
    if needed and not cfg.insecure and not (cfg.ca and cfg.cert and cfg.key):
        raise ConfigError(f"{root.path}: [tls] ca, cert and key are required for {needed[0]} "
                          "(or insecure = true for loopback development only; unix:PATH addresses need no TLS)")
    return cfg


def _s3(sec: _Section) -> S3Config:
    sec.unknown_keys({"bucket", "endpoint_url", "prefix", "region", "access_key_id", "access_key_id_file",
                      "secret_access_key", "secret_access_key_file", "connect_timeout", "read_timeout",
                      "max_attempts", "deadline"})
    d = S3Config(bucket="")
    return S3Config(
        bucket=sec.get("bucket", str), endpoint_url=sec.get("endpoint_url", str, None),
        prefix=sec.get("prefix", str, ""), region=sec.get("region", str, "us-east-1"),
        access_key_id=sec.secret("access_key_id"), secret_access_key=sec.secret("secret_access_key"),
        connect_timeout=_positive(sec, "connect_timeout", d.connect_timeout, MAX_SECONDS),
        read_timeout=_positive(sec, "read_timeout", d.read_timeout, MAX_SECONDS),
        max_attempts=_count(sec, "max_attempts", d.max_attempts, 1, 10),
        deadline=_positive(sec, "deadline", d.deadline, MAX_SECONDS))


def _repository(root: _Section) -> RepositoryConfig:
    r = root.table("repository")
    r.unknown_keys({"type", "path", "password", "password_file", "key_file", "s3", "pack_size_mib",
                    "compression_level"})
    rtype = r.get("type", str, "local")
    if rtype not in ("local", "s3"):
        raise ConfigError(f"{root.path}: [repository] type: expected \"local\" or \"s3\", got {rtype!r}")
    cfg = RepositoryConfig(
        type=rtype, path=r.get("path", str, ""), password=r.secret("password") if "password" in r.data else None,
        password_file=r.get("password_file", str, ""), key_file=r.get("key_file", str, ""), s3=_s3(r.table("s3")) if rtype == "s3" else None,
        pack_size_mib=r.get("pack_size_mib", int, 32), compression_level=r.get("compression_level", int, DEFAULT_COMPRESSION_LEVEL))
    if rtype == "local" and not cfg.path:
        raise ConfigError(f"{root.path}: [repository] path: required for a local repository")
    if not cfg.password and not cfg.password_file and not cfg.key_file:
        raise ConfigError(f"{root.path}: [repository] set password_file (or password) or key_file")
    if not 4 <= cfg.pack_size_mib <= 128:
        raise ConfigError(f"{root.path}: [repository] pack_size_mib: expected 4..128")
    if not 1 <= cfg.compression_level <= 19:
        raise ConfigError(f"{root.path}: [repository] compression_level: expected 1..19")
    return cfg


def _component(root: _Section, name: str, agents: dict[str, AgentRef]) -> ComponentConfig:
    c = root.table("components").table(name)
    if not _COMPONENT_NAME.match(name):
        raise ConfigError(f"{root.path}: [components.{name}]: component names may hold letters, digits, "
                          "'_', '.', '-' (not starting with '.' or '-')")
    kind = c.get("kind", str)
    if kind not in COMPONENT_KINDS:
        raise ConfigError(f"{root.path}: [components.{name}] kind: expected one of "
                          f"{', '.join(COMPONENT_KINDS)}, got {kind!r}")
    agent = c.get("agent", str)
    if agent not in agents:
        raise ConfigError(f"{root.path}: [components.{name}] agent: {agent!r} is not declared in [agents]")
    path = c.get("path", str, "")
    if kind in ("paths", "config") and not os.path.isabs(path):
        raise ConfigError(f"{root.path}: [components.{name}] path: expected an absolute path")
    options = {k: v for k, v in c.data.items() if k not in ("kind", "agent", "path", "exclude")}
    settings = parse_options(f"{root.path}: [components.{name}]", kind, options)
    return ComponentConfig(name, kind, agent, path, c.str_list("exclude"), options, settings)


def load_controller_config(path: str | None = None) -> ControllerConfig:
    """Read and validate the controller's TOML file."""
    path = path or os.environ.get(CONTROLLER_CONFIG_ENV) or DEFAULT_CONTROLLER_CONFIG
    root = _Section(path, "", _load_toml(path))
    root.name = "root"
    root.unknown_keys({"controller", "repository", "tls", "agents", "components", "recovery", "import", "metrics",
                      "alerts", "retention", "schedule", "objectives", "tiers"})
    ctl = root.table("controller")
    ctl.unknown_keys({"socket", "socket_group", "state_dir", "listen", "hostname"})
    agents_sec = root.table("agents")
    agents = {}
    for name in agents_sec.data:
        a = agents_sec.table(name)
        a.unknown_keys({"address", "server_name"})
        agents[name] = AgentRef(name, a.get("address", str), a.get("server_name", str, ""))
    components = {name: _component(root, name, agents) for name in root.table("components").data}
    listen = ctl.get("listen", str, "")
    return ControllerConfig(
        source=path,
        socket=ctl.get("socket", str, "/run/rag-backup/controller.sock"),
        socket_group=ctl.get("socket_group", str, "rag-backup"),
        state_dir=ctl.get("state_dir", str, "/var/lib/rag-backup"),
        listen=listen,
        hostname=ctl.get("hostname", str, "") or socket.gethostname(),
        repository=_repository(root), tls=_tls(root, [listen, *(a.address for a in agents.values())]),
        agents=agents, components=components,
        app_services=_app_services(root, agents), imports=_imports(root),
        metrics=_metrics(root), alerts=_alerts(root), retention=_retention(root),
        schedule=_schedule(root, components), objectives=_objectives(root), tiers=_tiers(root))


def _metrics(root: _Section) -> MetricsConfig:
    sec = root.table("metrics")
    sec.unknown_keys({"listen"})
    listen = sec.get("listen", str, "")
    if listen and (":" not in listen or not listen.rpartition(":")[2].isdigit()):
        raise sec._fail("listen", 'HOST:PORT (e.g. "127.0.0.1:9752")')
    return MetricsConfig(listen)


MAX_SECONDS = 86400.0  # a timeout or deadline beyond a day is a typo (and inf would never fire)


def _positive(sec: _Section, key: str, default: float, upper: float | None = None) -> float:
    """A finite number > 0 (and < upper): negative, zero, nan and inf are refused naming the key."""
    value = float(sec.get(key, (int, float), default, "a number"))
    if not value > 0 or not math.isfinite(value) or (upper is not None and value >= upper):  # nan fails `>`
        raise sec._fail(key, f"a finite number > 0{f' and < {upper:g}' if upper else ''}, got {value!r}")
    return value


def _seconds(sec: _Section, key: str, default: float) -> float:
    """A finite number of seconds >= 0 and < MAX_SECONDS (0: do not wait); others refused naming the key."""
    value = float(sec.get(key, (int, float), default, "a number of seconds"))
    if not 0 <= value < MAX_SECONDS:  # nan fails the comparison
        raise sec._fail(key, f"a number of seconds >= 0 and < {MAX_SECONDS:g}, got {value!r}")
    return value


def _alerts(root: _Section) -> AlertsConfig:
    sec = root.table("alerts")
    d = AlertsConfig()
    sec.unknown_keys({"size_deviation", "max_backup_age_hours", "min_free_ratio", "failure_window_hours",
                      "drill_max_age_days", "max_replication_lag_hours", "webhook"})
    webhook = sec.get("webhook", str, "")
    if webhook and not webhook.startswith(("http://", "https://")):
        raise sec._fail("webhook", "an http:// or https:// URL")
    return AlertsConfig(
        size_deviation=_positive(sec, "size_deviation", d.size_deviation),
        max_backup_age_hours=_positive(sec, "max_backup_age_hours", d.max_backup_age_hours),
        min_free_ratio=_positive(sec, "min_free_ratio", d.min_free_ratio, 1.0),
        failure_window_hours=_positive(sec, "failure_window_hours", d.failure_window_hours),
        drill_max_age_days=_positive(sec, "drill_max_age_days", d.drill_max_age_days),
        max_replication_lag_hours=_positive(sec, "max_replication_lag_hours", d.max_replication_lag_hours),
        webhook=webhook)


def _imports(root: _Section) -> ImportConfig:
    sec = root.table("import")
    sec.unknown_keys({"max_expansion_ratio"})
    ratio = sec.get("max_expansion_ratio", int, ImportConfig.max_expansion_ratio, "a whole number >= 0")
    if ratio < 0:
        raise sec._fail("max_expansion_ratio", "a whole number >= 0 (0: no limit)")
    return ImportConfig(ratio)



_DURATION_TEXT = re.compile(r"^(\d+[smhdwy])+$")


def _retention(root: _Section) -> RetentionConfig:
    """[retention]; durations are checked here so a bad one fails at load, naming the key."""
    return _retention_table(root.path, root.table("retention"), RetentionConfig())


_RETENTION_COUNTS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def _retention_table(path: str, r: _Section, default: RetentionConfig) -> RetentionConfig:
    """One retention table ([retention] or [tiers.NAME.retention]); `default` fills the keys it omits."""
    counts = _RETENTION_COUNTS
    r.unknown_keys({"keep_within", "rpo", "timezone", "repack_pct", "reader_wait", "forget_after_backup",
                    "prune_after_backup", *counts})
    for key in ("keep_within", "rpo"):
        if not _DURATION_TEXT.match(r.get(key, str, "0s") or "0s"):
            raise ConfigError(f"{path}: [{r.name}] {key}: expected a duration such as \"30d\", \"12h\" "
                              "or \"1w3d\" (units s, m, h, d, w, y)")
    for key in counts:
        if r.get(key, int, 0) < -1:
            raise ConfigError(f"{path}: [{r.name}] {key}: expected a count >= 0, or -1 for all")
    try:
        zoneinfo.ZoneInfo(r.get("timezone", str, "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory ("Europe"), a long name
        raise ConfigError(f"{path}: [{r.name}] timezone: expected an IANA time zone such as "
                          "\"Europe/Berlin\" or \"UTC\"") from None
    if not 0 <= r.get("repack_pct", int, 50) <= 100:
        raise ConfigError(f"{path}: [{r.name}] repack_pct: expected 0..100")
    if any(k in r.data for k in ("keep_within", *counts)):
        default = RetentionConfig(timezone=default.timezone)  # a table that sets a rule replaces the default's
    d = default
    return RetentionConfig(
        keep_within=r.get("keep_within", str, d.keep_within), rpo=r.get("rpo", str, d.rpo),
        timezone=r.get("timezone", str, d.timezone), repack_pct=r.get("repack_pct", int, d.repack_pct),
        reader_wait=_seconds(r, "reader_wait", d.reader_wait),
        forget_after_backup=r.get("forget_after_backup", bool, d.forget_after_backup),
        prune_after_backup=r.get("prune_after_backup", bool, d.prune_after_backup),
        **{k: r.get(k, int, getattr(d, k)) for k in counts})


# --------------------------------------------------------------------------- [tiers.NAME]

# Keys of [tiers.NAME]; subtables: retention. (object_lock and kind are reserved for later.)
TIER_KEYS = {"endpoint_url", "bucket", "prefix", "region", "credentials", "profile", "feed", "storage_class_packs",
             "storage_class_metadata", "retention", "connect_timeout", "read_timeout", "max_attempts",
             "max_concurrency", "bandwidth_limit", "restore_memory", "read_ahead", "kind", "object_lock",
             "archive"}
_TIER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_RESERVED_TIER_NAMES = ("primary", "local")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(|B|KiB|MiB|GiB|KB|MB|GB|k|M|G)$")
_SIZE_UNITS = {"": 1, "B": 1, "k": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2, "G": 1000**3, "GB": 1000**3,
               "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_rate(text: str) -> int | None:
    """Bytes per second from "50MiB", "10MB", "1048576" (a unit suffix is optional); None if not one."""
    m = _SIZE.match(text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def _tiers(root: _Section) -> dict[str, TierConfig]:
    """Every [tiers.NAME]; each feed must name "primary" or another tier, and feeds may not loop."""
    sec = root.table("tiers")
    tiers = {name: _tier(root.path, sec, name) for name in sec.data}
    for t in tiers.values():
        if t.feed != "primary" and t.feed not in tiers:
            raise ConfigError(f"{root.path}: [tiers.{t.name}] feed: expected \"primary\" or the name of "
                              f"another tier ({', '.join(n for n in tiers if n != t.name) or 'none declared'}), "
                              f"got {t.feed!r}")
        if t.feed != "primary" and tiers[t.feed].kind == "archive":
            raise ConfigError(f"{root.path}: [tiers.{t.name}] feed: {t.feed!r} is an archive tier (self-contained "
                              "sets, not a repository to copy from): feed from \"primary\" or a copy tier")
        seen, feed = {t.name}, t.feed
        while feed != "primary":
            if feed in seen:
                raise ConfigError(f"{root.path}: [tiers.{t.name}] feed: the feeds loop ({' -> '.join(seen)} -> "
                                  f"{feed}); one tier of each chain must be fed from \"primary\"")
            seen.add(feed)
            feed = tiers[feed].feed
    return tiers


def _tier(path: str, tiers: _Section, name: str) -> TierConfig:
    t = tiers.table(name)
    if not _TIER_NAME.match(name) or name in _RESERVED_TIER_NAMES:
        raise ConfigError(f"{path}: [tiers.{name}]: a tier name is 1-32 lowercase letters, digits, '_' or '-', "
                          f"starting with a letter, and not {' or '.join(_RESERVED_TIER_NAMES)}")
    t.unknown_keys(TIER_KEYS)
    d = TierConfig(name, "")
    creds_path = t.get("credentials", str, "")
    profile = t.get("profile", str, d.profile)
    key_id, secret = _shared_credentials(path, t, creds_path, profile) if creds_path else (None, None)
    retention = _retention_table(path, t.table("retention"), d.retention)
    if not retention.has_policy:
        raise t._fail("retention", "at least one keep_* rule (a tier keeps everything forever otherwise)")
    return _tier_options(path, t, TierConfig(
        name=name, bucket=_nonempty(t, "bucket"), endpoint_url=_endpoint(t), prefix=t.get("prefix", str, ""),
        region=t.get("region", str, d.region), credentials=creds_path, profile=profile,
        access_key_id=key_id, secret_access_key=secret, feed=t.get("feed", str, d.feed),
        storage_class_packs=_storage_class(t, "storage_class_packs", d.storage_class_packs),
        storage_class_metadata=_storage_class(t, "storage_class_metadata", d.storage_class_metadata),
        retention=retention, connect_timeout=_positive(t, "connect_timeout", d.connect_timeout, MAX_SECONDS),
        read_timeout=_positive(t, "read_timeout", d.read_timeout, MAX_SECONDS),
        max_attempts=_count(t, "max_attempts", d.max_attempts, 1, 10),
        max_concurrency=_count(t, "max_concurrency", d.max_concurrency, 1, 64),
        bandwidth_limit=_rate(t, "bandwidth_limit"), restore_memory=_memory(t, "restore_memory", d.restore_memory),
        read_ahead=_count(t, "read_ahead", d.read_ahead, 0, 8)))


def _tier_options(path: str, t: _Section, tier: TierConfig) -> TierConfig:
    """`kind`, [tiers.NAME.object_lock] and [tiers.NAME.archive] (core/tier_options.py)."""
    where = f"{path}: [{t.name}"
    kind = parse_kind(f"{where}]", t.get("kind", str, "copy"))
    lock = parse_object_lock(f"{where}.object_lock]", t.data["object_lock"]) if "object_lock" in t.data else None
    if "archive" in t.data and kind != "archive":
        raise ConfigError(f"{where}.archive]: only for kind = \"archive\"")
    archive = parse_archive(f"{where}.archive]", t.data.get("archive", {})) if kind == "archive" else None
    return dataclasses.replace(tier, kind=kind, object_lock=lock, archive=archive)


def _nonempty(sec: _Section, key: str) -> str:
    value = sec.get(key, str)
    if not value:
        raise sec._fail(key, "a non-empty string")
    return value


def _endpoint(sec: _Section) -> str | None:
    url = sec.get("endpoint_url", str, "")
    if url and not url.startswith(("http://", "https://")):
        raise sec._fail("endpoint_url", "an http:// or https:// URL (omit it for AWS S3)")
    return url or None


def _storage_class(sec: _Section, key: str, default: str) -> str:
    value = sec.get(key, str, default)
    if value not in STORAGE_CLASSES:
        raise sec._fail(key, f"one of {', '.join(STORAGE_CLASSES)}, got {value!r}")
    return value


def _count(sec: _Section, key: str, default: int, low: int, high: int) -> int:
    value = sec.get(key, int, default, "a whole number")
    if not low <= value <= high:
        raise sec._fail(key, f"a whole number {low}..{high}")
    return value


def _rate(sec: _Section, key: str) -> int:
    value = sec.get(key, (str, int), 0, 'a rate in bytes/s such as "50MiB" or 10000000')
    rate = value if isinstance(value, int) else parse_rate(value)
    if rate is None or rate < 0 or (rate and rate < 64 * 1024):
        raise sec._fail(key, 'a rate in bytes/s of at least 64KiB such as "50MiB" (0: no limit)')
    return rate


_MEMORY_RANGE = (32 * 1024 * 1024, 64 * 1024**3)


def _memory(sec: _Section, key: str, default: int) -> int:
    """A byte size such as "256MiB" within _MEMORY_RANGE (32 MiB, one pack of the default size, to 64 GiB)."""
    value = sec.get(key, (str, int), default, 'a size in bytes such as "256MiB"')
    size = value if isinstance(value, int) else parse_rate(value)
    if size is None or not _MEMORY_RANGE[0] <= size <= _MEMORY_RANGE[1]:
        raise sec._fail(key, 'a size from 32MiB to 64GiB such as "256MiB"')
    return size


def _shared_credentials(path: str, sec: _Section, creds_path: str, profile: str) -> tuple[Secret, Secret]:
    """(access key id, secret key) of `profile` in an AWS shared-credentials file; values never in messages."""
    import configparser

    where = f"{path}: [{sec.name}] credentials"
    parser = configparser.RawConfigParser()
    raw = read_private(creds_path, "credentials file", f"{where}: ")
    try:
        parser.read_string(raw.decode("utf-8"))
    except (UnicodeDecodeError, configparser.Error):
        raise ConfigError(f"{where}: {creds_path} is not an AWS shared-credentials (INI) file") from None
    if not parser.has_section(profile):
        raise ConfigError(f"{where}: {creds_path} has no [{profile}] profile (set `profile`)")
    items = dict(parser.items(profile))
    missing = [k for k in ("aws_access_key_id", "aws_secret_access_key") if not items.get(k)]
    if missing:
        raise ConfigError(f"{where}: profile [{profile}] in {creds_path} lacks {', '.join(missing)}")
    return Secret(items["aws_access_key_id"]), Secret(items["aws_secret_access_key"])


# --------------------------------------------------------------------------- [schedule], [objectives]

def _span(sec: _Section, key: str, default, minimum: str = "1s"):
    text = sec.get(key, str, None, 'a time span like "30s", "15m", "6h" or "1d"')
    if text is None:
        return default
    span = parse_span(text)
    if span is None or span < parse_span(minimum):
        raise sec._fail(key, f'a time span of at least {minimum} like "30s", "15m", "6h" or "1d", got {text!r}')
    return span


def _schedule(root: _Section, components: dict) -> Schedule:
    sec = root.table("schedule")
    sec.unknown_keys({"full_every", "incremental_every", "tolerance", "min_gap", "components", "deploy_debounce"})
    d = Schedule()
    names = sec.str_list("components")
    unknown = [n for n in names if n not in components]
    if unknown:
        raise sec._fail("components", f"names declared in [components], got unknown {', '.join(unknown)}")
    return Schedule(full_every=_span(sec, "full_every", d.full_every, "1m"),
                    incremental_every=_span(sec, "incremental_every", d.incremental_every, "1m"),
                    tolerance=_span(sec, "tolerance", d.tolerance, "0s"), min_gap=_span(sec, "min_gap", d.min_gap, "0s"),
                    components=names, deploy_debounce=_span(sec, "deploy_debounce", d.deploy_debounce, "0s"))


def _objectives(root: _Section) -> Objectives:
    sec = root.table("objectives")
    sec.unknown_keys({"rpo", "rto"})
    d = Objectives()
    return Objectives(rpo=_span(sec, "rpo", d.rpo, "1m"), rto=_span(sec, "rto", d.rto, "1m"))


def _app_services(root: _Section, agents: dict[str, AgentRef]) -> tuple[AppService, ...]:
    rec = root.table("recovery")
    rec.unknown_keys({"app_services"})
    out = []
    for n, item in enumerate(rec.get("app_services", list, [])):
        sec = _Section(root.path, f"recovery.app_services[{n}]", item)
        sec.unknown_keys({"agent", "service"})
        agent, service = sec.get("agent", str), sec.get("service", str)
        if agent not in agents:
            raise ConfigError(f"{root.path}: [recovery] app_services[{n}] agent: {agent!r} is not declared in [agents]")
        if service.partition(":")[0] not in ("docker", "systemd") or ":" not in service:
            raise ConfigError(f"{root.path}: [recovery] app_services[{n}] service: expected \"docker:NAME\" "
                              "or \"systemd:UNIT\"")
        out.append(AppService(agent, service))
    return tuple(out)


def load_agent_config(path: str | None = None) -> AgentConfig:
    """Read and validate the agent's TOML file."""
    path = path or os.environ.get(AGENT_CONFIG_ENV) or DEFAULT_AGENT_CONFIG
    root = _Section(path, "root", _load_toml(path))
    root.unknown_keys({"agent", "tls"})
    a = root.table("agent")
    a.unknown_keys({"listen", "cache_dir", "staging_dir", "allowed_paths", "workers"})
    allowed = a.str_list("allowed_paths") or ("/",)
    if not all(os.path.isabs(p) for p in allowed):
        raise ConfigError(f"{path}: [agent] allowed_paths: expected absolute paths")
    listen = a.get("listen", str, "127.0.0.1:7451")
    return AgentConfig(
        source=path, listen=listen,
        cache_dir=a.get("cache_dir", str, "/var/cache/rag-backup-agent"),
        staging_dir=a.get("staging_dir", str, "/var/lib/rag-backup-agent/staging"),
        allowed_paths=allowed, workers=a.get("workers", int, 0), tls=_tls(root, [listen]))

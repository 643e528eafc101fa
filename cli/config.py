"""`ragctl config check` and `ragctl config paths-unit`: the daemons' configs, checked before a
reload, and the config path unit's watch list generated from [components].

In: the controller config (global --config, $RAG_BACKUP_CONTROLLER_CONFIG or the default) and
the agent config. Out: findings (table or JSON; exit 0, or 3 when any is an error), or a
systemd drop-in. Runs locally: needs no running controller.
"""
from __future__ import annotations

import os

from ragbackup import errors
from ragbackup.config import AGENT_CONFIG_ENV, DEFAULT_AGENT_CONFIG, ControllerConfig, load_controller_config

from ragbackup.cli import config_check
from ragbackup.cli.output import emit_json, table

PATH_UNIT = "rag-backup-config.path"
SERVICE_UNIT = "rag-backup-config.service"
MAX_WATCHED_DIRS = 256  # one inotify watch each; a config tree is small


def register(sub) -> None:
    p = sub.add_parser("config", help="check the configuration; generate the config path unit's watch list")
    verbs = p.add_subparsers(dest="config_verb", metavar="ACTION")
    verbs.required = True
    c = verbs.add_parser(
        "check", help="validate controller and agent configs before a reload",
        description="Validate the controller's and (when present) the agent's TOML: every key, the "
                    "directories they name, the modes of key and password files, the certificates (valid "
                    "now, issued by the CA, naming the agent's listen host), each agent answering, and "
                    "whether [schedule] can meet [objectives] rpo. Exit 3 when any finding is an error; "
                    "warnings (with --strict: errors too) are printed.")
    c.add_argument("--controller", help="controller TOML (default: ragctl --config, "
                                        "$RAG_BACKUP_CONTROLLER_CONFIG or /etc/rag-backup/controller.toml)")
    c.add_argument("--agent", help=f"agent TOML (default: ${AGENT_CONFIG_ENV} or {DEFAULT_AGENT_CONFIG} "
                                   "when it exists)")
    c.add_argument("--no-agents", action="store_true", help="do not call the agents")
    c.add_argument("--strict", action="store_true", help="warnings fail too (exit 3)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_check, local=True)
    u = verbs.add_parser(
        "paths-unit", help=f"print a drop-in for {PATH_UNIT} watching the [components] config paths",
        description=f"Print a systemd drop-in for {PATH_UNIT}: one PathChanged= per kind = \"config\" "
                    "component path and each directory below it (PathChanged= is not recursive). "
                    f"Install it as /etc/systemd/system/{PATH_UNIT}.d/paths.conf, then "
                    f"`systemctl daemon-reload && systemctl restart {PATH_UNIT}`.")
    u.add_argument("--controller", help="controller TOML (default as for check)")
    u.set_defaults(func=run_paths_unit, local=True)


def _agent_path(given: str | None) -> str | None:
    if given:
        return given
    path = os.environ.get(AGENT_CONFIG_ENV) or DEFAULT_AGENT_CONFIG
    return path if os.path.exists(path) else None


def run_check(args) -> int:
    findings = config_check.check(args.controller or args.config, _agent_path(args.agent), not args.no_agents)
    failing = {config_check.ERROR} | ({config_check.WARN} if args.strict else set())
    bad = [f for f in findings if f.level in failing]
    if args.json:
        emit_json({"ok": not bad, "findings": [f.as_dict() for f in findings]})
    else:
        rows = [{**f.as_dict(), "level": f.level.upper() if f.level != "ok" else "ok"} for f in findings]
        print(table(rows, [("level", "LEVEL"), ("check", "CHECK"), ("detail", "DETAIL")]))
        print(f"{len(bad)} problem(s)" if bad else "configuration ok")
    return errors.ConfigError.exit_code if bad else 0


def _watch_dirs(root: str) -> list[str]:
    out = []
    for dirpath, dirs, _ in os.walk(root):
        dirs.sort()
        out.append(dirpath)
        if len(out) >= MAX_WATCHED_DIRS:
            break
    return out


def paths_dropin(cfg: ControllerConfig) -> str:
    """The drop-in text; ConfigError when no config component is declared."""
    comps = sorted((n, c.path) for n, c in cfg.components.items() if c.kind == "config")
    if not comps:
        raise errors.ConfigError(f"{cfg.source}: no component of kind \"config\" in [components] to watch")
    lines = [f"# {PATH_UNIT}.d/paths.conf, from {cfg.source} by `ragctl config paths-unit`",
             "[Path]", "PathChanged="]
    for _, path in comps:
        lines += [f"PathChanged={d}" for d in (_watch_dirs(path) if os.path.isdir(path) else [path])]
    names = ",".join(n for n, _ in comps)
    if names != "config":  # the shipped service backs up the component named `config`
        lines += ["", f"# and in {SERVICE_UNIT}.d/components.conf:", "# [Service]", "# ExecStart=",
                  f"# ExecStart=/opt/rag-backup/venv/bin/ragctl backup --components {names} --reason deploy"]
    return "\n".join(lines) + "\n"


def run_paths_unit(args) -> int:
    print(paths_dropin(load_controller_config(args.controller or args.config)), end="")
    return 0

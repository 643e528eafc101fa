"""`ragctl lifecycle show|apply --tier T [--rules FILE] [--json]`: the bucket lifecycle rules a tier needs.

In: the tier, and optionally a lifecycle document ({"Rules": [...]}, as `aws s3api
put-bucket-lifecycle-configuration` takes) to check instead of the generated rules. Out: the rules,
then each finding (ERROR: would break restores; WARNING: costs or a shorter recovery window) and
the findings on the bucket's current rules. `show` exits 3 when the rules have an error, `apply`
refuses them (exit 3, nothing changed) and otherwise puts them on the bucket (docs/ARCHIVE.md).
"""
from __future__ import annotations

import json
import sys
import textwrap

from ragbackup import errors
from ragbackup.v1 import controller_pb2

from ragbackup.cli.client import Client
from ragbackup.cli.output import emit_json

DESCRIPTION = "\n\n".join(textwrap.fill(p, 78) for p in (
    "Generate, check and apply the S3 lifecycle rules of an offsite tier. Every tier gets a rule that "
    "aborts incomplete multipart uploads; a tier with object lock gets one that expires noncurrent versions "
    "(what prune deleted) once their lock has lapsed; only an archive tier (kind = \"archive\") gets "
    "transitions to colder classes (packs only, by their tag) and the expiry of whole sets.",
    "With --rules FILE, those rules are checked instead (e.g. the runbook's GLACIER at 30 days, "
    "DEEP_ARCHIVE at 90, expire at 2555): a rule that would make live data of a deduplicated tier unreadable "
    "or destroy it is an error, reported by `show` (exit 3) and refused by `apply` (exit 3, the bucket is "
    "not changed). `apply` replaces this tier's own rules on the bucket and keeps other rules; with --rules "
    "the file is the bucket's whole lifecycle configuration.",
))


def register(sub) -> None:
    p = sub.add_parser("lifecycle", help="show or apply the S3 lifecycle rules a tier needs",
                       description=DESCRIPTION)
    p.add_argument("action", choices=("show", "apply"))
    p.add_argument("--tier", required=True, help="the offsite tier ([tiers.NAME])")
    p.add_argument("--rules", default="", metavar="FILE", help='lifecycle document to check: {"Rules": [...]}')
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _read(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise errors.UsageError(f"--rules {path}: {exc.strerror}") from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise errors.UsageError(f"--rules {path}: not JSON ({exc})") from None
    return text


def _print_findings(title: str, findings: list[dict]) -> None:
    if not findings:
        return
    print(title, file=sys.stderr)
    for f in findings:
        print(f"  {f['level'].upper()} {f['rule'] or '(rules)'}: {f['message']}", file=sys.stderr)


def run(args, client: Client) -> int:
    req = controller_pb2.LifecycleRequest(tier=args.tier, apply=args.action == "apply", rules_json=_read(args.rules))
    reply = client.call("Lifecycle", req, timeout=120)
    rules, findings = json.loads(reply.rules_json), json.loads(reply.findings_json)
    current_findings = json.loads(reply.current_findings_json or "[]")
    failed = any(f["level"] == "error" for f in findings)
    if args.json:
        emit_json({"tier": args.tier, "rules": rules["Rules"], "findings": findings, "applied": reply.applied,
                   "current": json.loads(reply.current_json)["Rules"], "current_findings": current_findings})
    else:
        print(json.dumps(rules, indent=2))
        _print_findings("findings:", findings)
        if args.action == "show":
            _print_findings("the bucket's current rules:", current_findings)
        print(f"applied to tier {args.tier}'s bucket" if reply.applied else
              ("refused: these rules would break restores" if failed else "not applied (use `apply`)"),
              file=sys.stderr)
    return errors.ConfigError.exit_code if failed else 0

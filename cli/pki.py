"""`ragctl pki`: create the private CA and certificates for controller-agent mTLS."""
from __future__ import annotations

from ragbackup.lazy import lazy_import

pki = lazy_import("ragbackup.pki")  # cryptography's x509 loads only when `ragctl pki` runs


def register(sub) -> None:
    p = sub.add_parser("pki", help="create mTLS certificates",
                       description="Create (once) a CA in DIR and issue a certificate NAME.pem / NAME-key.pem "
                                   "valid as TLS server and client for the given host names and addresses. "
                                   "Copy ca.pem and the host's pair to each host; keys are written 0600.")
    p.add_argument("--dir", required=True, help="directory holding ca.pem and ca-key.pem")
    p.add_argument("name", help="certificate name, e.g. controller or an agent's host name")
    p.add_argument("hosts", nargs="*", help="DNS names / IPs for subjectAltName (default: NAME)")
    p.set_defaults(func=run, local=True)


def run(args) -> int:
    pki.create_ca(args.dir)
    cert, key = pki.issue(args.dir, args.name, args.hosts or [args.name])
    print(f"issued {cert} and {key} (CA: {args.dir}/ca.pem)")
    return 0

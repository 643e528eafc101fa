"""A small private CA for rag-backup's mTLS: one CA, server and client certificates.

In: an output directory and certificate names. Out: PEM files (keys 0600):
ca.pem, ca-key.pem, NAME.pem, NAME-key.pem. Used by `ragctl pki` and the demo.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ragbackup import clock

VALID_DAYS = 3650


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rag-backup")])


def create_ca(directory: str) -> None:
    """Create ca.pem and ca-key.pem in `directory` unless they exist."""
    os.makedirs(directory, mode=0o750, exist_ok=True)
    if os.path.exists(os.path.join(directory, "ca.pem")):
        return
    key = ec.generate_private_key(ec.SECP256R1())
    now = clock.SYSTEM.now()
    cert = (x509.CertificateBuilder().subject_name(_name("rag-backup CA")).issuer_name(_name("rag-backup CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    _write(os.path.join(directory, "ca-key.pem"), _key_pem(key), 0o600)
    _write(os.path.join(directory, "ca.pem"), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def issue(directory: str, name: str, hosts: list[str]) -> tuple[str, str]:
    """Issue NAME.pem/NAME-key.pem signed by the CA, valid as TLS server and client.

    `hosts` are DNS names or IP addresses put in the subjectAltName. Returns (cert, key) paths.
    """
    with open(os.path.join(directory, "ca-key.pem"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(directory, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    key = ec.generate_private_key(ec.SECP256R1())
    now = clock.SYSTEM.now()
    builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(_san(hosts or [name]), critical=False))
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}-key.pem")
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path

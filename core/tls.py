"""gRPC transport security: mTLS on TCP, local credentials on unix sockets.

In: TlsConfig (CA, certificate and key paths, or insecure for loopback
development) and the address. Out: grpc server/channel credentials, or None
for insecure, with readable errors. A unix:PATH address gets gRPC's local
(UDS) credentials: no TLS, since the socket's permissions authenticate and no
byte leaves the host; the handshake refuses anything but a unix socket.
"""
from __future__ import annotations

import grpc

from ragbackup import unixsock
from ragbackup.config import TlsConfig
from ragbackup.errors import ConfigError
from ragbackup.secret import read_private

# Large messages: chunks are up to 4 MiB and batches carry several.
MAX_MESSAGE = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS {what} {path}: {exc.strerror}") from None


def _read_key(path: str) -> bytes:
    """The private key, refused when others may read it (ragbackup.secret.read_private)."""
    return read_private(path, "TLS key")


def server_credentials(tls: TlsConfig, address: str = "") -> grpc.ServerCredentials | None:
    """mTLS (clients must present a certificate signed by tls.ca); local credentials on unix:PATH."""
    if unixsock.is_unix(address):
        return grpc.local_server_credentials(grpc.LocalConnectionType.UDS)
    if tls.insecure:
        return None
    return grpc.ssl_server_credentials(
        [(_read_key(tls.key), _read(tls.cert, "certificate"))],
        root_certificates=_read(tls.ca, "CA"), require_client_auth=True)


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials | None:
    if tls.insecure:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca, "CA"), private_key=_read_key(tls.key),
        certificate_chain=_read(tls.cert, "certificate"))


def open_channel(address: str, tls: TlsConfig, server_name: str = "") -> grpc.Channel:
    """A channel to `address`: host:port with mTLS unless insecure, unix:PATH with local credentials."""
    options = list(CHANNEL_OPTIONS)
    if unixsock.is_unix(address):
        return grpc.secure_channel(address, grpc.local_channel_credentials(grpc.LocalConnectionType.UDS),
                                   options=options)
    creds = channel_credentials(tls)
    if creds is None:
        return grpc.insecure_channel(address, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(address, creds, options=options)

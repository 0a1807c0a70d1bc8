"""TLS settings for each route to the Teleport proxy: trust roots, ALPN and client identity.

The proxy routes a connection on its ALPN list (and the Kubernetes SNI), so each route gets its own
context: the web API (system roots), the unauthenticated join service (web certificate plus the
`teleport-proxy-grpc` ALPN) and the Auth service (Teleport host CA, client certificate, and the
cluster-specific `teleport-auth@` ALPN, which must come first).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from teleport_argocd.errors import ProxyError

PROXY_GRPC_ALPN = "teleport-proxy-grpc"
AUTH_ALPN_PREFIX = "teleport-auth@"
API_DOMAIN = "teleport.cluster.local"


def encode_cluster_name(cluster_name: str) -> str:
    """`<hex of the UTF-8 name>.teleport.cluster.local`, the SNI Auth answers to and the ALPN suffix."""
    return f"{cluster_name.encode().hex()}.{API_DOMAIN}"


def web_context(*, ca_pem: bytes | None = None, insecure: bool = False) -> ssl.SSLContext:
    """Verifies the proxy's public web certificate: system roots plus an optional extra CA."""
    context = ssl.create_default_context()
    if ca_pem:
        try:
            context.load_verify_locations(cadata=ca_pem.decode("ascii"))
        except (ssl.SSLError, ValueError) as exc:
            raise ProxyError(f"the extra CA for the Teleport proxy is not a PEM certificate: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def join_context(
    *, ca_pem: bytes | None = None, insecure: bool = False, web: ssl.SSLContext | None = None
) -> ssl.SSLContext:
    """The web certificate check, offering the proxy's unauthenticated gRPC (join) service.

    `web`: a context `web_context` made for the same `ca_pem` and `insecure`, whose ALPN list this
    sets, so a join loads the system roots once (each load costs tens of milliseconds of CPU)."""
    context = web or web_context(ca_pem=ca_pem, insecure=insecure)
    context.set_alpn_protocols([PROXY_GRPC_ALPN, "h2"])
    return context


def upgraded_join_context() -> ssl.SSLContext:
    """The join route inside a connection upgrade, where the proxy presents its host certificate.

    Before joining there is no host CA to verify it against, so, as Teleport's client does
    (`lib/client/proxy/insecure/insecure.go`, `verifyALPNUpgradedConn`), the chain is not verified
    here and `check_teleport_host_cert` checks the certificate after the handshake instead. The load
    balancer in front was verified against the web trust roots, as the direct route verifies the proxy.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([PROXY_GRPC_ALPN, "h2"])
    return context


def check_teleport_host_cert(cert_der: bytes) -> None:
    """Raises ProxyError unless the certificate names `teleport.cluster.local` and has not expired."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        valid = API_DOMAIN in names.get_values_for_type(x509.DNSName)
        valid = valid and datetime.now(UTC) < cert.not_valid_after_utc
    except (ValueError, x509.ExtensionNotFound):
        valid = False
    if not valid:
        raise ProxyError("the server is not a Teleport proxy or its certificate has expired")


def auth_context(
    cluster_name: str, trusted_ca_pems: Iterable[bytes], cert_pem: bytes, key_pem: bytes
) -> ssl.SSLContext:
    """mTLS straight to Auth through the proxy; the proxy does not terminate this TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=b"".join(_with_newline(p) for p in trusted_ca_pems).decode("ascii"))
    load_client_identity(context, cert_pem, key_pem)
    # The proxy routes on the first entry; listing h2 first would land on the web API.
    context.set_alpn_protocols([AUTH_ALPN_PREFIX + encode_cluster_name(cluster_name), "h2"])
    return context


def load_client_identity(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Loads a client certificate and key into `context` without writing the key to disk.

    `ssl` only reads them from a file path.
    """
    with _private_file(_with_newline(cert_pem) + key_pem) as path:
        context.load_cert_chain(path)


@contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    # An anonymous in-memory file where Linux offers one (the Lambda case): the key never touches /tmp.
    try:
        fd = os.memfd_create("teleport-identity", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # not Linux, or not permitted here
        fd = -1
    if fd >= 0:
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    # Elsewhere a 0600 file in a 0700 directory, removed as soon as ssl has read it.
    with tempfile.TemporaryDirectory(prefix="teleport-identity-") as directory:
        path = Path(directory, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield str(path)


def _with_newline(pem: bytes) -> bytes:
    return pem if pem.endswith(b"\n") else pem + b"\n"

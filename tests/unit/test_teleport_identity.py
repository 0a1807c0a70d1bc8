"""Reading Teleport's identity encoding back out of certificates."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from teleport_argocd.teleport.identity import (
    der_to_pem,
    identity_from_certificate,
    issuer_name,
    split_pem_bundle,
    subject_name,
)

NOT_AFTER = dt.datetime(2031, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
CA_KEY = ec.generate_private_key(ec.SECP256R1())


def _certificate(subject: list[x509.NameAttribute], issuer_cn: str = "root") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_AFTER - dt.timedelta(hours=1))
        .not_valid_after(NOT_AFTER)
        .sign(CA_KEY, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_identity_from_teleport_attributes() -> None:
    cert = _certificate(
        [
            x509.NameAttribute(NameOID.STREET_ADDRESS, "root"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kube-reader"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kube-admin"),
            x509.NameAttribute(NameOID.COMMON_NAME, "bot-argo-bot"),
            x509.NameAttribute(x509.ObjectIdentifier("1.3.9999.1.7"), "root.example.com"),
            x509.NameAttribute(x509.ObjectIdentifier("1.3.9999.2.18"), "argo bot"),
            x509.NameAttribute(
                x509.ObjectIdentifier("1.3.9999.2.20"), "7f9c2ba4-e88f-4c0e-9d5c-0d3a2c1b5e6f"
            ),
        ],
        issuer_cn="issuer-differs",
    )
    identity = identity_from_certificate(_pem(cert), b"KEY")
    assert identity.username == "bot-argo-bot"
    assert identity.bot_name == "argo bot"  # the OID wins over the CN
    assert identity.cluster_name == "root.example.com"  # the OID wins over the issuer
    assert identity.roles == ("kube-reader", "kube-admin")
    assert identity.bot_instance_id == "7f9c2ba4-e88f-4c0e-9d5c-0d3a2c1b5e6f"
    assert identity.expires == NOT_AFTER
    assert identity.key_pem == b"KEY"


def test_identity_falls_back_to_cn_and_issuer() -> None:
    cert = _certificate([x509.NameAttribute(NameOID.COMMON_NAME, "bot-ci")], issuer_cn="root")
    identity = identity_from_certificate(_pem(cert), b"KEY")
    assert (identity.bot_name, identity.cluster_name, identity.roles) == ("ci", "root", ())
    assert identity.bot_instance_id == ""


def test_identity_repr_leaks_no_key_material() -> None:
    cert = _certificate([x509.NameAttribute(NameOID.COMMON_NAME, "bot-ci")])
    identity = identity_from_certificate(_pem(cert), b"-----BEGIN EC PRIVATE KEY-----secret")
    assert "secret" not in repr(identity) and "BEGIN" not in repr(identity)


def test_pem_helpers() -> None:
    first = _certificate([x509.NameAttribute(NameOID.COMMON_NAME, "one")], issuer_cn="ca-one")
    second = _certificate([x509.NameAttribute(NameOID.COMMON_NAME, "two")])
    assert der_to_pem(first.public_bytes(serialization.Encoding.DER)) == _pem(first)
    assert split_pem_bundle(_pem(first) + b"\n" + _pem(second)) == [_pem(first), _pem(second)]
    assert (subject_name(_pem(first)), issuer_name(_pem(first))) == ("one", "ca-one")

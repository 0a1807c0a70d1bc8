"""Reading a Teleport identity out of its X.509 certificate.

Teleport encodes the identity in the certificate subject: CN is the username, each O a role,
and custom attributes under OID arc 1.3.9999 carry the bot name, the bot instance and the cluster
(`lib/tlsca/ca.go`: `BotASN1ExtensionOID`, `BotInstanceASN1ExtensionOID`, `TeleportClusterASN1ExtensionOID`).
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from teleport_argocd.model import Identity

BOT_NAME_OID = x509.ObjectIdentifier("1.3.9999.2.18")
BOT_INSTANCE_ID_OID = x509.ObjectIdentifier("1.3.9999.2.20")
TELEPORT_CLUSTER_OID = x509.ObjectIdentifier("1.3.9999.1.7")
_BOT_USER_PREFIX = "bot-"


def identity_from_certificate(cert_pem: bytes, key_pem: bytes) -> Identity:
    """The identity a PEM certificate carries, paired with its private key."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    username = _first(cert.subject, NameOID.COMMON_NAME)
    bot_name = _first(cert.subject, BOT_NAME_OID) or username.removeprefix(_BOT_USER_PREFIX)
    cluster_name = _first(cert.subject, TELEPORT_CLUSTER_OID) or issuer_name(cert_pem)
    roles = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return Identity(
        cert_pem=cert_pem,
        key_pem=key_pem,
        expires=cert.not_valid_after_utc,
        username=username,
        bot_name=bot_name,
        cluster_name=cluster_name,
        roles=roles,
        bot_instance_id=_first(cert.subject, BOT_INSTANCE_ID_OID),
    )


def issuer_name(cert_pem: bytes) -> str:
    """The issuer CN: Teleport CAs are named after their cluster."""
    return _first(x509.load_pem_x509_certificate(cert_pem).issuer, NameOID.COMMON_NAME)


def subject_name(cert_pem: bytes) -> str:
    """The subject CN."""
    return _first(x509.load_pem_x509_certificate(cert_pem).subject, NameOID.COMMON_NAME)


def lifetime(cert_pem: bytes) -> timedelta:
    """How long a certificate was issued for, NotBefore to NotAfter (Teleport backdates NotBefore)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def der_to_pem(der: bytes) -> bytes:
    """A DER certificate (as `teleport.join.v1` returns them) in PEM."""
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def split_pem_bundle(bundle: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, one PEM each."""
    return [c.public_bytes(serialization.Encoding.PEM) for c in x509.load_pem_x509_certificates(bundle)]


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attributes = name.get_attributes_for_oid(oid)
    return str(attributes[0].value) if attributes else ""

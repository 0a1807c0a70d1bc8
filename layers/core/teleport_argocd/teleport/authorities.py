"""The cluster's host and user CAs as Teleport publishes them, and what a CA rotation means for us.

A CA has active keys (they sign) and, during a rotation, additional trusted keys; both are trusted
(`services.GetTLSCerts`), which is what tbot writes into `caData` and what Teleport's clients trust.
In `update_clients` the new keys become active and clients reissue their certificates; from
`update_servers` servers present certificates of the new host CA; at the final `standby` the
additional keys are dropped (`lib/auth/rotate.go`). No audit event announces a phase, so every run
reads both CAs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

STANDBY = "standby"


@dataclass(frozen=True)
class Authority:
    """One CA type's TLS certificates (PEM) of our own cluster, and its rotation phase."""

    ca_type: str
    active: tuple[bytes, ...]
    additional: tuple[bytes, ...] = ()
    phase: str = STANDBY

    @property
    def trusted(self) -> tuple[bytes, ...]:
        """Active, then additional certificates, each once: tbot's order for `caData`."""
        return tuple(dict.fromkeys(self.active + self.additional))

    @property
    def rotating(self) -> bool:
        return self.phase not in ("", STANDBY)

    def signs_with_key_of(self, cert_pem: bytes) -> bool:
        """Whether `cert_pem` was issued by one of the active keys, the ones Teleport signs with now."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        for ca_pem in self.active:
            try:
                cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False

    def describe(self) -> str:
        return (
            f"{self.ca_type} CA in phase {self.phase or STANDBY} "
            f"({len(self.active)} active, {len(self.additional)} additional certificate(s))"
        )


@dataclass(frozen=True)
class Authorities:
    """Both CAs read in one run. `user` is None where Teleport only answers `GetClusterCACert`."""

    host: Authority
    user: Authority | None

    @property
    def trust_roots(self) -> tuple[bytes, ...]:
        """What a client verifies Auth and the proxy with: user CA certificates, then host CA ones,
        the order Teleport's join returns them in."""
        user = self.user.trusted if self.user is not None else ()
        return tuple(dict.fromkeys(user + self.host.trusted))

    def bot_needs_reissue(self, bot_cert_pem: bytes) -> bool:
        """Whether the bot certificate was issued by a user CA key that no longer signs.

        That happens in `update_clients` (the new keys became active) and in `rollback` (the old ones
        are active again): the phases in which Teleport's own clients reissue their certificates.
        Before the final `standby` drops those keys, the certificate must be replaced.
        """
        return self.user is not None and not self.user.signs_with_key_of(bot_cert_pem)

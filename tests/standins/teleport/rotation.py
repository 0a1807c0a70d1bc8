"""One CA type (host or user) moving through Teleport's rotation phases, as `lib/auth/rotate.go` moves it.

- `init` (from standby): a new key set is added as *additional trusted*; the old one stays active.
- `update_clients` (from init): the sets swap, the new keys become active (they sign from now on) and
  the old ones additional; servers still present certificates from the old CA.
- `update_servers` (from update_clients): keys unchanged; servers reload with certificates from the new CA.
- `rollback` (from init, update_clients or update_servers): the old keys active again, the new ones
  additional (from init nothing had been swapped); servers go back to the old CA.
- `standby` (from update_servers or rollback): the additional keys are dropped.

Clients are trusted if signed by any active or additional key (`services.GetTLSCerts`).
"""

from __future__ import annotations

from standins.teleport.ca import CertAuthority

STANDBY, INIT, UPDATE_CLIENTS, UPDATE_SERVERS, ROLLBACK = (
    "standby",
    "init",
    "update_clients",
    "update_servers",
    "rollback",
)
_FROM = {
    INIT: (STANDBY,),
    UPDATE_CLIENTS: (INIT,),
    UPDATE_SERVERS: (UPDATE_CLIENTS,),
    ROLLBACK: (INIT, UPDATE_CLIENTS, UPDATE_SERVERS),
    STANDBY: (UPDATE_SERVERS, ROLLBACK),
}


class RotationError(ValueError):
    """A phase change `processRotationRequest` refuses (`trace.BadParameter`)."""


class RotatingAuthority:
    """The key sets of one CA and the phase they are in."""

    def __init__(self, cluster_name: str) -> None:
        self.cluster_name = cluster_name
        self.active: tuple[CertAuthority, ...] = (CertAuthority(cluster_name),)
        self.additional: tuple[CertAuthority, ...] = ()
        self.phase = STANDBY

    @property
    def state(self) -> str:
        return STANDBY if self.phase == STANDBY else "in_progress"

    @property
    def signer(self) -> CertAuthority:
        """The CA that signs new certificates: the first active key."""
        return self.active[0]

    @property
    def trusted(self) -> tuple[CertAuthority, ...]:
        """Every CA whose certificates are accepted: active, then additional."""
        return self.active + self.additional

    @property
    def serving(self) -> CertAuthority:
        """The CA of the certificates servers present: in `update_clients` they have not reloaded yet,
        so it is the old one, now additional; in every other phase the first active key."""
        return self.additional[0] if self.phase == UPDATE_CLIENTS else self.active[0]

    def check(self, phase: str) -> None:
        """Raises RotationError for a transition to `phase` that Teleport refuses from this one."""
        if phase not in _FROM:
            raise RotationError(f"unsupported phase: {phase!r}")
        if self.phase not in _FROM[phase]:
            raise RotationError(f"can not transition to phase {phase!r} from {self.phase!r} phase")

    def rotate(self, phase: str) -> None:
        """Moves to `phase`, or raises RotationError for a transition Teleport refuses."""
        self.check(phase)
        if phase == INIT:
            self.additional = (CertAuthority(self.cluster_name),)
        elif phase == UPDATE_CLIENTS or (phase == ROLLBACK and self.phase != INIT):
            self.active, self.additional = self.additional, self.active
        elif phase == STANDBY:
            self.additional = ()
        self.phase = phase

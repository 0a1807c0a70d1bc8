"""The project's exception hierarchy.

Library exceptions (grpc, botocore, httpx, PyYAML) are mapped into these at the
one boundary where they arise, so the reconcile and the handlers never import a
transport library to catch an error. No message ever carries key or certificate
material.
"""

from __future__ import annotations

from dataclasses import dataclass


class TeleportArgoCDError(Exception):
    """Base class of every error this project raises on purpose."""


# -- configuration -----------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid value, with the path of the key that holds it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(TeleportArgoCDError):
    """Raised when configuration is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in self.problems))


class NotConfigured(TeleportArgoCDError):
    """Raised when the configuration parameter does not exist yet: a fresh deploy, not a failure."""


class UnknownOutput(TeleportArgoCDError):
    """Raised when a request names an output the configuration does not have."""


# -- Teleport -----------------------------------------------------------------


class TeleportError(TeleportArgoCDError):
    """Base class for failures talking to Teleport."""


class ProxyError(TeleportError):
    """Raised when the proxy cannot be used: unreachable, bad TLS, not Teleport, no Kubernetes address."""


class UntrustedServer(ProxyError):
    """Raised when a Teleport server's certificate is signed by no CA we trust (the web certificate,
    or a host CA rotated past `update_servers` while this process kept the old one)."""


class JoinError(TeleportError):
    """Raised when the IAM join is refused; the message carries Teleport's reason."""


class AuthCallError(TeleportError):
    """Raised when an Auth service RPC fails after joining."""

    def __init__(self, method: str, message: str, *, code: str = "") -> None:
        self.method = method
        self.code = code
        super().__init__(f"{method} failed: {code + ': ' if code else ''}{message}")


class LifecycleFailure(TeleportError):
    """Base class for a refusal of the bot that will not heal by itself; carries what to do about it.

    `kind` names the class in the state table, the status report and logs; `fix` is the operator's
    remedy, also part of the message.
    """

    kind = "lifecycle"

    def __init__(self, reason: str, fix: str) -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason}. Fix: {fix}")


class BotLocked(LifecycleFailure):
    """Raised when Teleport refuses the bot because a lock targets it (its user, role or bot instance)."""

    kind = "bot-locked"


class BotDeleted(LifecycleFailure):
    """Raised when the bot the join token names, or the bot of the kept certificate, no longer exists."""

    kind = "bot-deleted"


class JoinNotAllowed(LifecycleFailure):
    """Raised when the join token's allow rules no longer match the function's AWS account and role."""

    kind = "join-not-allowed"


class CredentialTTLCapped(LifecycleFailure):
    """Recorded, not raised, when Teleport issues certificates shorter than `credential_ttl` (a role's
    `max_session_ttl` caps them): the run still writes, with the shorter certificates."""

    kind = "credential-ttl-capped"


class ClusterNotListed(TeleportError):
    """Raised when an audit event names a kube cluster Teleport still does not list after the wait.

    Retriable: the agent heartbeats the cluster only after it picks the resource up.
    """


class SelectorError(TeleportError):
    """Raised for one selector that cannot be resolved (name not found, ambiguous discovered name)."""

    def __init__(self, selector: str, message: str) -> None:
        self.selector = selector
        super().__init__(f"selector {selector}: {message}")


# -- destination (the Kubernetes cluster where Argo CD runs) ------------------


class DestinationError(TeleportArgoCDError):
    """Base class for failures writing into the Argo CD cluster."""


class DestinationUnreachable(DestinationError):
    """Raised when the destination API server cannot be reached or its credentials cannot be built."""


class DestinationForbidden(DestinationError):
    """Raised when the destination refuses the request (401/403)."""


class DestinationConflict(DestinationError):
    """Raised when an update still conflicts (409) after the allowed retries."""


class DestinationRejected(DestinationError):
    """Raised when the destination rejects the object itself (422 invalid, 400 bad request)."""


class KubeconfigError(DestinationUnreachable):
    """Raised when a destination's kubeconfig cannot be used (missing parts, exec plugins, file paths)."""


class NotManagedError(DestinationError):
    """Raised when asked to delete a Secret we did not write (no ownership annotation, another uid)."""


class ForeignSecretError(DestinationError):
    """Raised when a Secret of the name we render exists and is neither ours nor tbot's for that cluster."""


# -- rendering -----------------------------------------------------------------


class RenderError(TeleportArgoCDError):
    """Raised when a cluster Secret cannot be rendered (no CA, a value Kubernetes would refuse)."""


# -- fan-out -------------------------------------------------------------------


class FanOutError(TeleportArgoCDError):
    """Raised when the schedule cannot queue one run per output (SQS refused the messages)."""


class MalformedRunMessage(TeleportArgoCDError):
    """Raised when a queued run cannot be read: not one the schedule wrote."""


# -- state ---------------------------------------------------------------------


class StateError(TeleportArgoCDError):
    """Raised when the DynamoDB state table cannot be read or written."""


# -- audit events --------------------------------------------------------------


class MalformedEvent(TeleportArgoCDError):
    """Raised for an audit event that can never be forwarded (not a JSON object, missing fields, too deep).

    `problems` lists each problem with its path, for an answer that names them all; one, the message
    itself, when there is only one.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems is not None else [message]


class EventTooLarge(MalformedEvent):
    """Raised for an audit event whose JSON would not fit in one EventBridge entry."""

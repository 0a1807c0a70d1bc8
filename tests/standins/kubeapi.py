"""A Kubernetes API server stand-in for Secrets, Namespaces and Argo CD Applications, over HTTPS.

What it keeps faithful, because our code and kubectl depend on it:
- resourceVersion (one global counter), uid, creationTimestamp; 404, 409 (create of an
  existing name, stale resourceVersion or uid on update/patch/delete) and 422 with
  Status objects shaped like the real API's; DNS-1123 names, label and data key rules;
- server-side apply and field management (`standins.ssa`): managedFields per manager, apply
  conflicts and `force`, JSON merge and JSON (RFC 6902) patches; an apply that creates is
  also authorised as `create`, as the API server's patch handler does;
- ValidatingAdmissionPolicies given to `admit` (the ones `scripts/rbac.py` prints), evaluated
  with cel-python on CREATE, UPDATE (patches and applies included) and DELETE of Secrets;
- authentication by client certificate (CN = user, O = groups) or bearer token: static
  tokens, and EKS tokens (`k8s-aws-v1.`) checked like aws-iam-authenticator, with the
  caller mapped to a user through access entries; anonymous requests are refused (401);
- authorisation per user or group, namespace, resource and verb, with the real 403 message;
- a certificate for one DNS name only (no IP SAN), so a client on 127.0.0.1 must set the
  TLS server name; discovery (`/version`, `/api`, `/apis`, `/api/v1`) complete enough for kubectl;
- Argo CD Applications (`applications.argoproj.io`), listed per namespace with RBAC and paging
  (see the Applications section for the facts it follows).

Tests see every request in `requests`, and `before()` runs an action (say, Argo CD
touching a Secret) just before the next matching request is served.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hmac
import json
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

import celpy
import jsonpatch
import jsonpointer
import trustme
import yaml
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from standins import ssa
from standins.aws import AwsCredentials

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.1",
    "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
    "gitTreeState": "clean",
    "buildDate": "2025-05-15T08:19:08Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
API_RESOURCES = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": ["ns"],
        },
        {
            "name": "secrets",
            "singularName": "secret",
            "namespaced": True,
            "kind": "Secret",
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        },
    ],
}
MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
# Argo CD's Application custom resource (manifests/crds/application-crd.yaml in argoproj/argo-cd):
# group argoproj.io, version v1alpha1, plural applications, namespaced.
APPLICATION_GROUP = "argoproj.io"
APPLICATION_VERSION = "v1alpha1"
APPLICATIONS = f"applications.{APPLICATION_GROUP}"
JSON_PATCH_TYPE = "application/json-patch+json"
APPLY_PATCH_TYPE = "application/apply-patch+yaml"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_DNS1123_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_QUALIFIED_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)

# -- EKS tokens -------------------------------------------------------------------

EKS_TOKEN_PREFIX = "k8s-aws-v1."
_STS_HOST = re.compile(r"sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")
_PRESIGN_PARAMS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
_ASSUMED_ROLE = re.compile(r"arn:(aws[-a-z]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)")


class StsRefused(Exception):
    """STS would not answer this presigned request (its error code is the message)."""


class PresignedSts:
    """STS's side of a presigned `GetCallerIdentity`: checks the signature, names the caller.

    moto verifies only header-signed requests (a presigned GET with signing on fails there
    with a 500, and with signing off it answers a default identity), so the signature is
    recomputed here with botocore's SigV4 for credentials the test registers, typically
    ones moto issued with `lambda_role_credentials`.
    """

    def __init__(self) -> None:
        self._credentials: dict[str, AwsCredentials] = {}

    def register(self, credentials: AwsCredentials) -> None:
        self._credentials[credentials.access_key] = credentials

    def caller_arn(self, url: str, headers: Mapping[str, str]) -> str:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        scope = params.get("X-Amz-Credential", "").split("/")
        known = self._credentials.get(scope[0])
        if len(scope) != 5 or known is None:
            raise StsRefused("InvalidClientTokenId")
        if (known.token or "") != params.get("X-Amz-Security-Token", ""):
            raise StsRefused("InvalidClientTokenId")
        signed = params.get("X-Amz-SignedHeaders", "").split(";")
        request = AWSRequest(
            method="GET",
            url=urlunsplit(
                parts._replace(
                    query="&".join(p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature="))
                )
            ),
            headers={
                h: parts.netloc if h == "host" else headers[h] for h in signed if h == "host" or h in headers
            },
        )
        request.context["timestamp"] = params.get("X-Amz-Date", "")
        auth = SigV4QueryAuth(
            Credentials(known.access_key, known.secret_key, known.token), scope[3], scope[2]
        )
        try:
            expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        except (ValueError, IndexError):
            raise StsRefused("IncompleteSignature") from None
        if not hmac.compare_digest(expected, params.get("X-Amz-Signature", "")):
            raise StsRefused("SignatureDoesNotMatch")
        return known.arn


# -- objects and errors --------------------------------------------------------------


class ApiError(Exception):
    """A request the API answers with a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource})


def _conflict(resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": {why}',
        {"name": name, "kind": resource},
    )


def _modified(resource: str, name: str) -> ApiError:
    return _conflict(
        resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )


def _uid_mismatch(resource: str, name: str, given: str, actual: str) -> ApiError:
    return _conflict(
        resource, name, f"Precondition failed: UID in precondition: {given}, UID in object meta: {actual}"
    )


def _invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 with one cause per (field, message), worded like apimachinery's field errors."""
    texts = [f"{f}: {m}" for f, m in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {summary}',
        {
            "name": name,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


def _qualified_name_problems(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        problems.append("prefix part " + _DNS1123_MESSAGE)
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        problems.append(_QUALIFIED_MESSAGE if name else "name part must be non-empty")
    return problems


def _metadata_problems(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    causes: list[tuple[str, str]] = []
    name = meta.get("name") or ""
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": {_DNS1123_MESSAGE}'))
    for key, value in (meta.get("labels") or {}).items():
        for problem in _qualified_name_problems(key):
            causes.append(("metadata.labels", f'Invalid value: "{key}": {problem}'))
        if not isinstance(value, str) or len(value) > 63 or (value and not _QUALIFIED_NAME.fullmatch(value)):
            causes.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character",
                )
            )
    for key in meta.get("annotations") or {}:
        for problem in _qualified_name_problems(key.lower()):
            causes.append(("metadata.annotations", f'Invalid value: "{key}": {problem}'))
    return causes


def _secret_data(name: str, body: Mapping[str, Any]) -> dict[str, str]:
    """`data` checked as the API decodes it (base64, 400 if not), with `stringData` folded in."""
    data = dict(body.get("data") or {})
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ApiError(
                400,
                "BadRequest",
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[{key}]',
            ) from None
    for key, text in (body.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(text).encode()).decode()
    causes = [
        (
            f"data[{key}]",
            f'Invalid value: "{key}": a valid config key must consist of alphanumeric characters, '
            "'-', '_' or '.'",
        )
        for key in data
        if not _DATA_KEY.fullmatch(key) or len(key) > 253
    ]
    if causes:
        raise _invalid("Secret", name, causes)
    return data


def _selector(expression: str) -> Callable[[Mapping[str, str]], bool]:
    """Equality-based label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`)."""
    requirements: list[tuple[str, str, str]] = []  # (operator, key, value)
    for term in filter(None, (t.strip() for t in expression.split(","))):
        if any(c in term for c in " ()"):
            raise ApiError(
                400, "BadRequest", f"unable to parse requirement: {term!r}: set-based selectors unsupported"
            )
        if "!=" in term:
            key, _, value = term.partition("!=")
            requirements.append(("!=", key, value))
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            requirements.append(("=", key, value))
        elif term.startswith("!"):
            requirements.append(("!", term[1:], ""))
        else:
            requirements.append(("", term, ""))

    def matches(labels: Mapping[str, str]) -> bool:
        return all(
            {
                "!=": labels.get(key) != value,
                "=": labels.get(key) == value,
                "!": key not in labels,
                "": key in labels,
            }[operator]
            for operator, key, value in requirements
        )

    return matches


def _apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge: Secrets have no merge keys we use)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _apply_merge_patch(result.get(key), value)
    return result


def cluster_secret(
    name: str,
    namespace: str = "argocd",
    *,
    server: str = "https://teleport.example.com:443",
    tls: Mapping[str, bytes | str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Argo CD cluster Secret manifest shaped like `teleport_argocd.argocd` renders one.

    `tls` holds tlsClientConfig values: bytes (PEM) are base64-encoded as Go does, str kept.
    """
    tls_config = {
        k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in (tls or {}).items()
    }
    data = {
        "name": f"root-{name}".encode(),
        "server": server.encode(),
        "config": json.dumps({"tlsClientConfig": tls_config}, separators=(",", ":")).encode(),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"argocd.argoproj.io/secret-type": "cluster", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as the API saw it; `verb` is the Kubernetes verb (get, list, watch, create, ...)."""

    method: str
    path: str
    verb: str
    resource: str
    namespace: str
    name: str
    user: str
    status: int
    # When it was answered (epoch seconds): a bench measures from an event to the Secret's write.
    at: float = field(default_factory=time.time, compare=False)


@dataclass(frozen=True)
class _Rule:
    users: frozenset[str]
    groups: frozenset[str]
    verbs: frozenset[str]
    resources: frozenset[str]
    namespaces: frozenset[str] | None  # None: every namespace


@dataclass
class _Hook:
    verb: str
    resource: str
    action: Callable[[], object]
    remaining: int


@dataclass
class _Fault:
    """An answer the server gives instead of serving the request (status 0: no answer at all)."""

    status: int
    retry_after: int | str | None  # a string is sent verbatim: what a broken or hostile proxy says
    remaining: int

    def status_body(self) -> dict[str, Any]:
        if self.status == 429:
            # API Priority and Fairness (k8s.io/apiserver pkg/server/filters/priority-and-fairness.go,
            # via responsewriters' tooManyRequests): reason TooManyRequests, retryAfterSeconds in details.
            return ApiError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"retryAfterSeconds": self.retry_after if isinstance(self.retry_after, int) else 1},
            ).status()
        return ApiError(
            self.status, "InternalError", "Internal error occurred: etcdserver: leader changed"
        ).status()


@dataclass(frozen=True)
class _Subject:
    user: str
    groups: tuple[str, ...]


class KubeApiServer:
    """The stand-in; use as a context manager. `url` is https://127.0.0.1:<port>, `hostname` the TLS name."""

    def __init__(
        self,
        hostname: str = "kube.standin.test",
        *,
        namespaces: Iterable[str] = ("default", "kube-system", "argocd"),
        eks_cluster_name: str | None = None,
        latency: float = 0.0,
    ) -> None:
        self.hostname = hostname
        # Seconds each request waits before it is served, outside any lock, so concurrent requests
        # overlap: loopback answers in ~1 ms and would hide the round trips a real API server costs.
        self.latency = latency
        self.ca = trustme.CA()
        self.eks_cluster_name = eks_cluster_name
        self.sts = PresignedSts()
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.requests: list[Request] = []
        self.open_connections = 0  # client connections open now, TLS handshake done
        self._lock = threading.RLock()
        self._rv = 0
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._applications: dict[tuple[str, str], dict[str, Any]] = {}
        self._tokens: dict[str, _Subject] = {}
        self._access_entries: dict[str, _Subject] = {}
        self._rules: list[_Rule] = []
        self._hooks: list[_Hook] = []
        self._faults: list[_Fault] = []
        self._policies: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._httpd: _HttpServer | None = None
        for namespace in namespaces:
            self.add_namespace(namespace)

    # -- lifecycle --------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def start(self) -> KubeApiServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert(self.hostname).configure_cert(context)
        self.ca.configure_trust(context)
        context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is one way in, a token the other
        self._httpd = _HttpServer(self, context)
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- who may do what ------------------------------------------------------------

    def client_credentials(self, user: str, groups: Iterable[str] = ()) -> tuple[bytes, bytes]:
        """A client certificate and key (PEM) the server accepts as `user` in `groups`."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([*subject, x509.NameAttribute(NameOID.COMMON_NAME, user)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def kubeconfig(self, user: str, groups: Iterable[str] = ()) -> dict[str, Any]:
        """A kubeconfig that reaches this server as `user` with a client certificate (data embedded)."""
        cert, key = self.client_credentials(user, groups)
        cluster = {
            "server": self.url,
            "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
            "tls-server-name": self.hostname,
        }
        credentials = {
            "client-certificate-data": base64.b64encode(cert).decode(),
            "client-key-data": base64.b64encode(key).decode(),
        }
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": cluster}],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "standin", "user": user}}],
            "current-context": user,
        }

    def add_token(self, token: str, user: str, groups: Iterable[str] = ()) -> None:
        """A static bearer token."""
        self._tokens[token] = _Subject(user, tuple(groups))

    def add_access_entry(
        self, principal_arn: str, *, username: str | None = None, groups: Iterable[str] = ()
    ) -> None:
        """Like an EKS access entry: an IAM role or user ARN mapped to a Kubernetes user and groups.

        EKS names a role's sessions `arn:aws:sts::<account>:assumed-role/<role>/<session>` by default.
        """
        self._access_entries[principal_arn] = _Subject(username or "", tuple(groups))

    def allow(
        self,
        *,
        user: str | None = None,
        group: str | None = None,
        verbs: Iterable[str],
        resources: Iterable[str] = ("secrets",),
        namespaces: Iterable[str] | None = None,
    ) -> None:
        """An RBAC grant (a Role plus RoleBinding; with `namespaces=None`, a ClusterRoleBinding).

        A resource in an API group is named `<resource>.<group>` (`applications.argoproj.io`)."""
        self._rules.append(
            _Rule(
                users=frozenset([user] if user else ()),
                groups=frozenset([group] if group else ()),
                verbs=frozenset(verbs),
                resources=frozenset(resources),
                namespaces=None if namespaces is None else frozenset(namespaces),
            )
        )

    def admit(self, documents: Iterable[Mapping[str, Any]]) -> None:
        """Install ValidatingAdmissionPolicies and their bindings (other kinds are ignored), as
        `kubectl apply -f` of `scripts/rbac.py`'s output would: a binding of the same name replaces
        the one installed."""
        docs = [copy.deepcopy(dict(d)) for d in documents]
        policies = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ValidatingAdmissionPolicy"}
        with self._lock:
            for binding in docs:
                if binding.get("kind") == "ValidatingAdmissionPolicyBinding":
                    name = binding["metadata"]["name"]
                    self._policies = [p for p in self._policies if p[1]["metadata"]["name"] != name]
                    self._policies.append((policies[binding["spec"]["policyName"]], binding))

    def before(
        self, verb: str, action: Callable[[], object], *, resource: str = "secrets", times: int = 1
    ) -> None:
        """Run `action` just before each of the next `times` authorised `verb` requests is served."""
        with self._lock:
            self._hooks.append(_Hook(verb, resource, action, times))

    def fail(self, status: int, *, times: int = 1, retry_after: int | str | None = None) -> None:
        """Answer the next `times` requests with `status` instead of serving them (an overloaded server).

        429 comes with `Retry-After` (`retry_after`, else 1 s, as API Priority and Fairness sends);
        5xx with an InternalError Status; `status=0` closes the connection without an answer, as a
        server restarting behind a load balancer does.
        """
        with self._lock:
            self._faults.append(_Fault(status, retry_after if status == 429 else None, times))

    def _take_fault(
        self, method: str, target: str, headers: Mapping[str, str], peer_cert: Any
    ) -> _Fault | None:
        """The injected fault for this request, if any; logged like any other request."""
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.pop(0)
        url = urlsplit(target)
        verb, resource, namespace, name = _attributes(method, url.path, {})
        subject = self._authenticate(headers, peer_cert)
        with self._lock:
            self.requests.append(
                Request(
                    method,
                    url.path,
                    verb,
                    resource,
                    namespace,
                    name,
                    subject.user if subject else "",
                    fault.status,
                )
            )
        return fault

    # -- direct access, as another writer would have (not logged) ------------------------

    def reset(self) -> None:
        """No Secrets, no request log, no hooks or injected faults; namespaces, access and admission
        policies stay.
        End-to-end tests share one server and each starts from this."""
        with self._lock:
            self._secrets.clear()
            self._applications.clear()
            self.requests.clear()
            self._hooks.clear()
            self._faults.clear()

    def add_namespace(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._namespaces[name] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    **self._system_fields(),
                    "name": name,
                    "labels": {"kubernetes.io/metadata.name": name},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            return copy.deepcopy(self._namespaces[name])

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._secrets.get((namespace, name))
            return copy.deepcopy(found)

    def put_secret(self, manifest: Mapping[str, Any], *, manager: str = "kubectl") -> dict[str, Any]:
        """Store a Secret (new or replacing) as an Update by `manager` would: no checks or admission,
        the resourceVersion bumped and the fields it changes owned by `manager` (tbot writes with
        manager `tbot`, `kubectl edit` with `kubectl-edit`)."""
        with self._lock:
            meta = manifest["metadata"]
            key = (meta["namespace"], meta["name"])
            old = self._secrets.get(key)
            stored = copy.deepcopy(dict(manifest))
            stored.setdefault("type", "Opaque")
            stored["metadata"] = {**meta, **self._system_fields(old)}
            requested = meta.get("managedFields")
            if old is None:
                if requested is None:
                    ssa.track_create(stored, manager, "Update", self._stamp())
            else:
                ssa.track_update(old, stored, manager, requested, self._stamp())
            self._secrets[key] = stored
            return copy.deepcopy(stored)

    def remove_secret(self, namespace: str, name: str) -> None:
        """Delete a stored Secret, as another writer would."""
        with self._lock:
            del self._secrets[namespace, name]

    def edit_secret(
        self,
        namespace: str,
        name: str,
        change: Callable[[dict[str, Any]], None],
        *,
        manager: str = "argocd-server",
    ) -> dict[str, Any]:
        """Change a stored Secret in place (as Argo CD or a person would): an Update by `manager`."""
        with self._lock:
            secret = self.secret(namespace, name)
            assert secret is not None, f"no secret {namespace}/{name}"
            change(secret)
            return self.put_secret(secret, manager=manager)

    # -- request handling ------------------------------------------------------------------

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        peer_cert: dict[str, Any] | None,
    ) -> tuple[int, dict[str, Any]]:
        if self.latency:
            time.sleep(self.latency)
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        verb, resource, namespace, name = _attributes(method, url.path, query)
        subject = self._authenticate(headers, peer_cert)
        user = subject.user if subject else ""
        try:
            if subject is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if resource:
                self._authorize(subject, verb, resource, namespace, name)
                self._run_hooks(verb, resource)
            status, answer = self._serve(
                method, url.path, query, verb, resource, namespace, name, headers, body, subject
            )
        except ApiError as error:
            status, answer = error.code, error.status()
        with self._lock:
            self.requests.append(Request(method, url.path, verb, resource, namespace, name, user, status))
        return status, answer

    def _authenticate(self, headers: Mapping[str, str], peer_cert: dict[str, Any] | None) -> _Subject | None:
        if peer_cert:
            attributes = [attr for rdn in peer_cert.get("subject", ()) for attr in rdn]
            user = next((v for k, v in attributes if k == "commonName"), "")
            return _Subject(user, tuple(v for k, v in attributes if k == "organizationName"))
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        if token.startswith(EKS_TOKEN_PREFIX) and self.eks_cluster_name:
            return self._eks_subject(token)
        return self._tokens.get(token)

    def _eks_subject(self, token: str) -> _Subject | None:
        """aws-iam-authenticator's checks (`pkg/token/token.go` Verify), then STS, then the access entry."""
        if len(token) > 4096:
            return None
        try:
            encoded = token[len(EKS_TOKEN_PREFIX) :]
            url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        parts = urlsplit(url)
        params = {k.lower(): v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        if (
            parts.scheme != "https"
            or parts.path != "/"
            or not _STS_HOST.fullmatch(parts.hostname or "")
            or not set(params) <= _PRESIGN_PARAMS
            or params.get("action") != "GetCallerIdentity"
            or "x-k8s-aws-id" not in params.get("x-amz-signedheaders", "").split(";")
        ):
            return None
        try:
            signed_at = datetime.strptime(params.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(params.get("x-amz-expires", ""))
        except ValueError:
            return None
        if not 0 <= expires <= 900 or self.now() - signed_at > timedelta(minutes=15):
            return None
        try:
            arn = self.sts.caller_arn(url, {"x-k8s-aws-id": self.eks_cluster_name or ""})
        except StsRefused:
            return None
        match = _ASSUMED_ROLE.fullmatch(arn)
        principal = f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else arn
        entry = self._access_entries.get(principal)
        if entry is None:
            return None
        return _Subject(entry.user or arn, entry.groups)

    def _authorize(self, subject: _Subject, verb: str, resource: str, namespace: str, name: str) -> None:
        if "system:masters" in subject.groups:
            return
        for rule in self._rules:
            if (
                (subject.user in rule.users or rule.groups.intersection(subject.groups))
                and verb in rule.verbs
                and resource in rule.resources
                and (rule.namespaces is None or namespace in rule.namespaces)
            ):
                return
        plural, _, group = resource.partition(".")
        what = f'{resource} "{name}"' if name else resource
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        details: dict[str, Any] = {"group": group, "kind": plural} if group else {"kind": resource}
        if name:
            details["name"] = name
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{subject.user}" cannot {verb} resource "{plural}" '
            f'in API group "{group}" {where}',
            details,
        )

    def _run_hooks(self, verb: str, resource: str) -> None:
        with self._lock:
            due = [h for h in self._hooks if h.verb == verb and h.resource == resource and h.remaining > 0]
            for hook in due:
                hook.remaining -= 1
            self._hooks = [h for h in self._hooks if h.remaining > 0]
        for hook in due:
            hook.action()

    def _serve(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        headers: Mapping[str, str],
        body: bytes,
        subject: _Subject | None,
    ) -> tuple[int, dict[str, Any]]:
        if resource == APPLICATIONS:
            return self._serve_applications(verb, namespace, query)
        if resource not in ("", "secrets", "namespaces"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not resource:
            documents: dict[str, dict[str, Any]] = {
                "/version": VERSION,
                "/api": {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.hostname}
                    ],
                },
                "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
                "/api/v1": API_RESOURCES,
            }
            if method == "GET" and path.rstrip("/") in documents:
                return 200, documents[path.rstrip("/")]
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if verb == "watch":
            raise ApiError(405, "MethodNotAllowed", "watch is not implemented by this stand-in")
        content_type = headers.get("content-type", "").split(";")[0].strip()
        document: Any = None
        if body:
            try:
                document = yaml.safe_load(body) if content_type == APPLY_PATCH_TYPE else json.loads(body)
            except (ValueError, yaml.YAMLError):
                raise ApiError(
                    400, "BadRequest", "the body of the request was in an unknown format"
                ) from None
        manager = query.get("fieldManager") or headers.get("user-agent", "").split("/")[0] or "unknown"
        with self._lock:
            if resource == "namespaces":
                return self._serve_namespaces(verb, name, query)
            if namespace not in self._namespaces and verb == "create":
                raise _not_found("namespaces", namespace)
            if verb == "list":
                return 200, self._list_secrets(namespace, query)
            if verb == "create":
                return 201, self._create_secret(namespace, document or {}, manager, subject)
            if verb == "get":
                return 200, self._existing(namespace, name)
            if verb == "update":
                return 200, self._update_secret(namespace, name, document or {}, manager, subject)
            if verb == "patch":
                if content_type == APPLY_PATCH_TYPE:
                    return self._apply_secret(namespace, name, document, query, subject)
                if content_type not in (*MERGE_PATCH_TYPES, JSON_PATCH_TYPE):
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        f"the body of the request was in an unsupported format: {content_type}",
                    )
                return 200, self._patch_secret(namespace, name, document, content_type, manager, subject)
            if verb == "delete":
                return 200, self._delete_secret(namespace, name, document or {}, subject)
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    # -- secrets (called with the lock held) ------------------------------------------------

    def _existing(self, namespace: str, name: str) -> dict[str, Any]:
        found = self._secrets.get((namespace, name))
        if found is None:
            raise _not_found("secrets", name)
        return copy.deepcopy(found)

    def _list_secrets(self, namespace: str, query: Mapping[str, str]) -> dict[str, Any]:
        wanted = _selector(query.get("labelSelector", ""))
        items = [
            copy.deepcopy(s)
            for (ns, _), s in sorted(self._secrets.items())
            if ns == namespace and wanted(s["metadata"].get("labels") or {})
        ]
        return {
            "kind": "SecretList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _checked(self, namespace: str, document: Mapping[str, Any]) -> dict[str, Any]:
        """A Secret from a request body, validated like the API; system fields are the caller's business."""
        if not isinstance(document, Mapping):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized (must be of type Secret)")
        if document.get("kind") not in (None, "Secret"):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized (must be of type Secret)")
        meta = dict(document.get("metadata") or {})
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        causes = _metadata_problems(meta)
        if causes:
            raise _invalid("Secret", meta.get("name") or "", causes)
        meta.pop("managedFields", None)
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {**meta, "namespace": namespace},
            "type": document.get("type") or "Opaque",
            "data": _secret_data(meta["name"], document),
        }

    def _create_secret(
        self, namespace: str, document: Mapping[str, Any], manager: str, subject: _Subject | None
    ) -> dict[str, Any]:
        secret = self._checked(namespace, document)
        meta = secret["metadata"]
        if meta.get("resourceVersion"):
            # etcd3's store refuses it with a plain error, which the API reports as an internal error.
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
        if (namespace, meta["name"]) in self._secrets:
            raise ApiError(
                409,
                "AlreadyExists",
                f'secrets "{meta["name"]}" already exists',
                {"name": meta["name"], "kind": "secrets"},
            )
        ssa.track_create(secret, manager, "Update", self._stamp())
        self._admit("CREATE", namespace, secret, None, subject)
        meta.update(self._system_fields())
        self._secrets[namespace, meta["name"]] = secret
        return copy.deepcopy(secret)

    def _update_secret(
        self,
        namespace: str,
        name: str,
        document: Mapping[str, Any],
        manager: str,
        subject: _Subject | None,
    ) -> dict[str, Any]:
        body_name = (document.get("metadata") or {}).get("name")
        if body_name != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body_name}) does not match the name on the URL ({name})",
            )
        current = self._existing(namespace, name)
        new = self._checked(namespace, document)
        ssa.track_update(
            current, new, manager, (document.get("metadata") or {}).get("managedFields"), self._stamp()
        )
        return self._replace(current, new, subject)

    def _patch_secret(
        self,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        manager: str,
        subject: _Subject | None,
    ) -> dict[str, Any]:
        current = self._existing(namespace, name)
        if content_type == JSON_PATCH_TYPE:
            # k8s.io/apiserver patch.go applyJSPatch: a patch that does not apply is a 422.
            try:
                patched = jsonpatch.JsonPatch(patch).apply(current)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError) as exc:
                raise ApiError(422, "", str(exc)) from None
        else:
            patched = _apply_merge_patch(current, patch or {})
        if not isinstance(patched, dict):
            raise ApiError(400, "BadRequest", "the object provided is unrecognized (must be of type Secret)")
        new = self._checked(namespace, patched)
        requested = (patched.get("metadata") or {}).get("managedFields")
        ssa.track_update(current, new, manager, requested, self._stamp())
        return self._replace(current, new, subject)

    def _apply_secret(
        self,
        namespace: str,
        name: str,
        document: Any,
        query: Mapping[str, str],
        subject: _Subject | None,
    ) -> tuple[int, dict[str, Any]]:
        """Server-side apply: create if absent, else merge by field ownership (see `standins.ssa`)."""
        manager = query.get("fieldManager", "")
        if not manager:
            raise _invalid_options("fieldManager", "Required value: is required for apply patch")
        force = query.get("force", "") == "true"
        if (
            not isinstance(document, Mapping)
            or document.get("apiVersion") != "v1"
            or document.get("kind") != "Secret"
        ):
            raise ApiError(
                400, "BadRequest", "error decoding patch: apiVersion v1 and kind Secret are required"
            )
        if (document.get("metadata") or {}).get("name") != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({(document.get('metadata') or {}).get('name')}) does not match "
                f"the name on the URL ({name})",
            )
        applied = self._checked(namespace, document)
        if "type" not in document:
            applied.pop("type")
        applied_meta = applied["metadata"]
        current = self._secrets.get((namespace, name))
        if current is None:
            if namespace not in self._namespaces:
                raise _not_found("namespaces", namespace)
            assert subject is not None
            self._authorize(subject, "create", "secrets", namespace, name)
            if applied_meta.get("resourceVersion"):
                raise _not_found("secrets", name)
            new = ssa.apply(None, applied, manager, force, self._stamp())
            new.setdefault("type", "Opaque")
            self._admit("CREATE", namespace, new, None, subject)
            new["metadata"].update(self._system_fields())
            self._secrets[namespace, name] = new
            return 201, copy.deepcopy(new)
        current = copy.deepcopy(current)
        try:
            new = ssa.apply(current, applied, manager, force, self._stamp())
        except ssa.ApplyConflict as conflict:
            raise ApiError(
                409,
                "Conflict",
                conflict.message(),
                {"name": name, "kind": "secrets", "causes": conflict.causes()},
            ) from None
        for key in ("resourceVersion", "uid"):
            if applied_meta.get(key):
                new["metadata"][key] = applied_meta[key]
            else:
                new["metadata"].pop(key, None)
        return 200, self._replace(current, new, subject)

    def _replace(
        self, current: dict[str, Any], new: dict[str, Any], subject: _Subject | None
    ) -> dict[str, Any]:
        """An update's checks and effect: preconditions, immutable fields, admission, no-op detection."""
        old_meta, meta = current["metadata"], new["metadata"]
        name = old_meta["name"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise _modified("secrets", name)
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise _uid_mismatch("secrets", name, meta["uid"], old_meta["uid"])
        if new["type"] != current.get("type", "Opaque"):
            raise _invalid("Secret", name, [("type", f'Invalid value: "{new["type"]}": field is immutable')])
        system = ("uid", "resourceVersion", "creationTimestamp")
        meta.update({k: old_meta[k] for k in system})
        self._admit("UPDATE", old_meta["namespace"], new, current, subject)
        if _timeless(new) == _timeless(current):
            return current  # a no-op update keeps the resourceVersion (and the managers' times)
        meta.update(self._system_fields(current))
        self._secrets[meta["namespace"], name] = new
        return copy.deepcopy(new)

    def _delete_secret(
        self, namespace: str, name: str, options: Mapping[str, Any], subject: _Subject | None
    ) -> dict[str, Any]:
        secret = self._existing(namespace, name)
        current = secret["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != current["uid"]:
            raise _uid_mismatch("secrets", name, pre["uid"], current["uid"])
        if pre.get("resourceVersion") and pre["resourceVersion"] != current["resourceVersion"]:
            raise _conflict(
                "secrets",
                name,
                f"the ResourceVersion in the precondition ({pre['resourceVersion']}) does not match "
                f"the ResourceVersion in record ({current['resourceVersion']}). "
                "The object might have been modified",
            )
        self._admit("DELETE", namespace, None, secret, subject)
        del self._secrets[namespace, name]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": "secrets", "uid": current["uid"]},
        }

    def _admit(
        self,
        operation: str,
        namespace: str,
        obj: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None,
        subject: _Subject | None,
    ) -> None:
        """Every bound ValidatingAdmissionPolicy that matches; the first failed validation denies."""
        name = (obj or old or {}).get("metadata", {}).get("name", "")
        request = {
            "operation": operation,
            "namespace": namespace,
            "name": name,
            "userInfo": {
                "username": subject.user if subject else "",
                "groups": list(subject.groups) if subject else [],
            },
        }
        labels = self._namespaces.get(namespace, {}).get("metadata", {}).get("labels", {})
        activation: dict[str, Any] | None = None  # converted once, for the first policy that applies
        for policy, binding in self._policies:
            spec = policy["spec"]
            rules = spec.get("matchConstraints", {}).get("resourceRules", [])
            if not any(
                "secrets" in r.get("resources", ()) and operation in r.get("operations", ()) for r in rules
            ):
                continue
            selector = binding["spec"].get("matchResources", {}).get("namespaceSelector", {})
            if not _selects(selector, labels):
                continue
            if activation is None:
                sides: dict[str, Any] = {"request": request, "object": obj, "oldObject": old}
                activation = {k: celpy.json_to_cel(v) for k, v in sides.items()}
            if not all(_cel(c["expression"], activation) for c in spec.get("matchConditions", ())):
                continue
            for validation in spec.get("validations", ()):
                if not _cel(validation["expression"], activation):
                    reason = validation.get("reason", "Invalid")
                    code = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413}.get(
                        reason, 422
                    )
                    why = (
                        f"ValidatingAdmissionPolicy '{policy['metadata']['name']}' with binding "
                        f"'{binding['metadata']['name']}' denied request: {validation.get('message', '')}"
                    )
                    raise ApiError(
                        code,
                        reason,
                        f'secrets "{name}" is forbidden: {why}',
                        {"name": name, "kind": "secrets"},
                    )

    def _stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _serve_namespaces(self, verb: str, name: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if verb == "get":
            if name not in self._namespaces:
                raise _not_found("namespaces", name)
            return 200, copy.deepcopy(self._namespaces[name])
        if verb == "list":
            wanted = _selector(query.get("labelSelector", ""))
            items = [copy.deepcopy(n) for n in self._namespaces.values() if wanted(n["metadata"]["labels"])]
            return 200, {
                "kind": "NamespaceList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _system_fields(self, old: Mapping[str, Any] | None = None) -> dict[str, str]:
        """uid and creationTimestamp (kept from `old` when replacing) and the next resourceVersion."""
        self._rv += 1
        old_meta = old["metadata"] if old else {}
        return {
            "uid": old_meta.get("uid") or str(uuid.uuid4()),
            "resourceVersion": str(self._rv),
            "creationTimestamp": old_meta.get("creationTimestamp")
            or self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    # -- Argo CD Applications ----------------------------------------------------------------
    #
    # What the stand-in follows (argoproj/argo-cd): Application is a namespaced custom resource,
    # `applications.argoproj.io`, served at /apis/argoproj.io/v1alpha1/namespaces/<ns>/applications
    # (manifests/crds/application-crd.yaml); `spec.destination` names the target cluster by `server`
    # (its API URL) or by `name` (the cluster Secret's `name`), pkg/apis/application/v1alpha1/types.go
    # ApplicationDestination. Authorisation is per namespace and verb like any resource, and the 403
    # names the group. A LIST honours `limit` and `continue` as the API server does for every resource
    # (a page of at most `limit` items and a token for the rest). Only LIST is served: that is all
    # the functions may do with Applications; tests create them directly with `put_application`.

    def put_application(
        self,
        namespace: str,
        name: str,
        *,
        server: str | None = None,
        cluster_name: str | None = None,
        deleting: bool = False,
    ) -> dict[str, Any]:
        """Store an Application targeting `server` or `cluster_name`, as Argo CD or a person would.

        `deleting`: a deletion was requested and Argo CD's resources finalizer still runs (the
        Application stays listed until Argo CD has removed its resources from the cluster)."""
        destination = {"namespace": "default"}
        if server is not None:
            destination["server"] = server
        if cluster_name is not None:
            destination["name"] = cluster_name
        with self._lock:
            old = self._applications.get((namespace, name))
            meta: dict[str, Any] = {"name": name, "namespace": namespace, **self._system_fields(old)}
            if deleting:
                meta["deletionTimestamp"] = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
                meta["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
            app = {
                "apiVersion": f"{APPLICATION_GROUP}/{APPLICATION_VERSION}",
                "kind": "Application",
                "metadata": meta,
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "https://git.example.com/apps.git", "path": name},
                    "destination": destination,
                },
                "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
            }
            self._applications[namespace, name] = app
            return copy.deepcopy(app)

    def remove_application(self, namespace: str, name: str) -> None:
        with self._lock:
            del self._applications[namespace, name]

    def _serve_applications(
        self, verb: str, namespace: str, query: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if verb != "list" or not namespace:
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        with self._lock:
            names = sorted(n for ns, n in self._applications if ns == namespace)
            after = _continue_from(query.get("continue", ""))
            names = [n for n in names if n > after]
            limit = int(query.get("limit") or 0)
            page, rest = (names[:limit], names[limit:]) if limit > 0 else (names, [])
            metadata: dict[str, Any] = {"resourceVersion": str(self._rv)}
            if rest:
                metadata["continue"] = base64.urlsafe_b64encode(page[-1].encode()).decode()
                metadata["remainingItemCount"] = len(rest)
            return 200, {
                "apiVersion": f"{APPLICATION_GROUP}/{APPLICATION_VERSION}",
                "kind": "ApplicationList",
                "metadata": metadata,
                "items": [copy.deepcopy(self._applications[namespace, n]) for n in page],
            }


def _continue_from(token: str) -> str:
    """The name a `continue` token resumes after ("" for the first page); 400 for a token we did not
    issue, as the API server refuses a malformed one."""
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(
            400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion"
        ) from None


def _invalid_options(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {field}: {message}',
        {"kind": "PatchOptions", "group": "meta.k8s.io", "causes": [{"field": field, "message": message}]},
    )


def _timeless(secret: Mapping[str, Any]) -> Any:
    """A Secret with its managers' timestamps left out: what a no-op write leaves unchanged."""
    meta = dict(secret["metadata"])
    meta["managedFields"] = [
        {k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []
    ]
    return {**secret, "metadata": meta}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) on a namespace's labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or ():
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


_CEL = celpy.Environment()


@functools.lru_cache(maxsize=64)
def _program(expression: str) -> Any:
    """Compiled once, as the API server compiles a policy once: parsing is most of CEL's cost."""
    return _CEL.program(_CEL.compile(expression))


def _cel(expression: str, activation: Mapping[str, Any]) -> bool:
    result = _program(expression).evaluate(dict(activation))
    return bool(result) if not isinstance(result, celpy.CELEvalError) else False


def _attributes(method: str, path: str, query: Mapping[str, str]) -> tuple[str, str, str, str]:
    """(verb, resource, namespace, name) as the API's request-info resolver derives them."""
    parts = [p for p in path.split("/") if p]
    group = ""
    if parts[:1] == ["apis"] and parts[1:3] == [APPLICATION_GROUP, APPLICATION_VERSION] and len(parts) > 3:
        group, parts = APPLICATION_GROUP, ["api", "v1", *parts[3:]]
    if parts[:2] != ["api", "v1"] or len(parts) < 3:
        return method.lower(), "", "", ""
    rest = parts[2:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 2:  # subresources
        return method.lower(), "", "", ""
    resource, name = rest[0], (rest[1] if len(rest) > 1 else "")
    if group:  # a resource in an API group is named as kubectl names it: applications.argoproj.io
        resource = f"{resource}.{group}"
    collection = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
    item = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = (item if name else collection).get(method, method.lower())
    if verb in ("list", "get") and query.get("watch") in ("true", "1"):
        verb = "watch"
    return verb, resource, namespace, name


def _linger(sock: socket.socket) -> None:
    """Close after a failed handshake so the client reads our TLS alert (say, a refused certificate).

    With TLS 1.3 the client may already have sent its request; closing with those bytes unread makes
    the kernel send a reset, which can destroy the alert before the client reads it. So stop writing,
    drain what arrives until the client closes (or a second passes), then close.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1)
        while sock.recv(4096):
            pass
    except OSError:
        pass


class _HttpServer(ThreadingHTTPServer):
    """HTTPS with the TLS handshake in the connection's own thread, so a bad client blocks no one."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops connections when several clients open their pools
    # at once; a real API server (Go's net/http) listens with the kernel's somaxconn.
    request_queue_size = 128

    def __init__(self, api: KubeApiServer, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        # Handshake separately: wrap_socket takes the connection over from `request`, so after a
        # failed handshake only the TLS socket can still linger on it.
        tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            _linger(tls)  # the client refused our certificate, we refused its, or it went away
            tls.close()
            return
        with self.api._lock:
            self.api.open_connections += 1
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            tls.close()
            with self.api._lock:
                self.api.open_connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping connections is normal here; anything else is a stand-in bug worth a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, ssl.SSLError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each response waits for a delayed ACK (~40 ms)
    timeout = 30
    server: _HttpServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = self.server.api._take_fault(self.command, self.path, headers, self.connection.getpeercert())
        if fault is not None and fault.status == 0:
            self.close_connection = True
            return
        if fault is not None:
            status, answer = fault.status, fault.status_body()
        else:
            status, answer = self.server.api.handle(
                self.command, self.path, headers, body, self.connection.getpeercert()
            )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        if fault is not None and fault.retry_after is not None:
            self.send_header("Retry-After", str(fault.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are in `KubeApiServer.requests`; no stderr noise."""

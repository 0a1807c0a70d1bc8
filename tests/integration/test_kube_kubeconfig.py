"""Kubeconfig destinations (Secrets Manager on moto); the real kubectl with a written Secret's credentials."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from standins.aws import REGION, MotoServer
from standins.kubeapi import KubeApiServer, cluster_secret
from teleport_argocd.config import KubeconfigSecretDestination
from teleport_argocd.destination import connect as connecting
from teleport_argocd.destination.connect import connect, connect_kept, release_others
from teleport_argocd.destination.kubeconfig import kubeconfig_from_secret
from teleport_argocd.errors import DestinationUnreachable


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer() as s:
        s.allow(group="writers", verbs=["get", "patch", "create", "delete"], namespaces=["argocd"])
        yield s


@pytest.fixture
def session(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A session that reaches moto, as the Lambda would with AWS_ENDPOINT_URL set."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


def stored(moto: MotoServer, text: str) -> str:
    secret_id = f"argocd-kubeconfig-{uuid.uuid4().hex[:8]}"
    moto.client("secretsmanager").create_secret(Name=secret_id, SecretString=text)
    return secret_id


def test_yaml_kubeconfig(server: KubeApiServer, moto: MotoServer, session: boto3.Session) -> None:
    secret_id = stored(moto, yaml.safe_dump(server.kubeconfig("ci", ["writers"])))
    with connect(KubeconfigSecretDestination(secret_id, REGION, None), session=session) as store:
        assert store.write(cluster_secret("kc-1"), None).action == "created"
    assert server.requests[-1].user == "ci"


def test_json_kubeconfig_with_a_chosen_context(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session
) -> None:
    kubeconfig = server.kubeconfig("ci", ["writers"])
    kubeconfig["contexts"].append({"name": "broken", "context": {"cluster": "nowhere", "user": "ci"}})
    kubeconfig["current-context"] = "broken"
    secret_id = stored(moto, json.dumps(kubeconfig))
    with connect(KubeconfigSecretDestination(secret_id, None, "ci"), session=session) as store:
        assert store.get("argocd", "kc-1") is not None


def test_token_kubeconfig_without_tls_verification(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session
) -> None:
    server.add_token("s3cr3t-token", "token-user", ["writers"])
    kubeconfig = server.kubeconfig("ci")
    kubeconfig["clusters"][0]["cluster"] = {"server": server.url, "insecure-skip-tls-verify": True}
    kubeconfig["users"][0]["user"] = {"token": "s3cr3t-token"}
    secret_id = stored(moto, yaml.safe_dump(kubeconfig))
    with connect(KubeconfigSecretDestination(secret_id, None, None), session=session) as store:
        assert store.write(cluster_secret("kc-token"), None).action == "created"
    assert server.requests[-1].user == "token-user"


def test_a_warm_process_keeps_the_store_while_its_kubeconfig_is_unchanged(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session
) -> None:
    destination = KubeconfigSecretDestination(
        stored(moto, yaml.safe_dump(server.kubeconfig("ci", ["writers"]))), None, None
    )
    first = connect_kept(destination, session=session)
    assert first.write(cluster_secret("kept-1"), None).action == "created"

    again = connect_kept(destination, session=session)  # the next warm invocation
    assert again is first
    assert again.write(cluster_secret("kept-2"), None).action == "created"


def test_a_kept_store_is_not_used_once_the_kubeconfigs_ca_changed(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session
) -> None:
    """The CA changed between two warm invocations (here to one that did not sign the server's
    certificate): the kept store, whose connections were verified against the old CA, is not used;
    a store made from the new kubeconfig verifies against the new CA and refuses the server."""
    kubeconfig = server.kubeconfig("ci", ["writers"])
    secret_id = stored(moto, yaml.safe_dump(kubeconfig))
    destination = KubeconfigSecretDestination(secret_id, None, None)
    kept = connect_kept(destination, session=session)
    assert kept.write(cluster_secret("ca-1"), None).action == "created"

    with KubeApiServer() as other:  # another CA
        other_ca = other.kubeconfig("ci")["clusters"][0]["cluster"]["certificate-authority-data"]
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = other_ca
    moto.client("secretsmanager").put_secret_value(
        SecretId=secret_id, SecretString=yaml.safe_dump(kubeconfig)
    )
    fresh = connect_kept(destination, session=session)

    assert fresh is not kept
    with pytest.raises(DestinationUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        fresh.write(cluster_secret("ca-2"), None)
    assert server.secret("argocd", "ca-2") is None


@pytest.mark.parametrize("rule", ["another session", "idle", "age"])
def test_a_kept_store_is_replaced_with_another_session_or_when_idle_or_old(
    server: KubeApiServer,
    moto: MotoServer,
    session: boto3.Session,
    monkeypatch: pytest.MonkeyPatch,
    rule: str,
) -> None:
    destination = KubeconfigSecretDestination(
        stored(moto, yaml.safe_dump(server.kubeconfig("ci", ["writers"]))), None, None
    )
    kept = connect_kept(destination, session=session)
    kept.write(cluster_secret(f"rule-{rule.replace(' ', '-')}"), None)
    if rule == "another session":
        session = boto3.Session(aws_access_key_id="other", aws_secret_access_key="other", region_name=REGION)
    else:
        monkeypatch.setattr(connecting, "KEPT_IDLE" if rule == "idle" else "KEPT_FOR", 0.0)

    fresh = connect_kept(destination, session=session)

    assert fresh is not kept
    assert fresh.get("argocd", f"rule-{rule.replace(' ', '-')}") is not None


def test_the_kept_store_of_a_destination_no_longer_configured_is_closed(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session
) -> None:
    """A warm invocation whose configuration dropped a destination closes that destination's kept
    connections; the destinations still configured keep theirs."""
    release_others(())  # what earlier tests kept
    settled(server, 0)
    kubeconfig = yaml.safe_dump(server.kubeconfig("ci", ["writers"]))
    staying = KubeconfigSecretDestination(stored(moto, kubeconfig), None, None)
    dropped = KubeconfigSecretDestination(stored(moto, kubeconfig), None, None)
    kept = connect_kept(staying, session=session)
    kept.write(cluster_secret("staying"), None)
    connect_kept(dropped, session=session).write(cluster_secret("dropped"), None)
    assert server.open_connections == 2

    release_others({staying})

    assert settled(server, 1) == 1  # the dropped store's connection is closed, the other is open
    assert connect_kept(staying, session=session) is kept


def settled(server: KubeApiServer, expected: int) -> int:
    """The server's open connections once they reach `expected` (a client's close reaches it shortly
    after), or after five seconds."""
    deadline = time.monotonic() + 5
    while server.open_connections != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.open_connections


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that tunnels CONNECT (RFC 9110 §9.3.6), as corporate egress proxies do; it
    records each tunnel's destination, so a test can tell a proxied request from a direct one."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Tunnel(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        method, authority, _ = self.rfile.readline().decode().split(" ", 2)
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.server.tunnels.append(authority)
        host, port = authority.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            back = threading.Thread(target=_pipe, args=(upstream, self.connection), daemon=True)
            back.start()
            _pipe(self.connection, upstream)
            back.join(timeout=5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_kubeconfigs_proxy_url_carries_every_request(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session, proxy: ConnectProxy
) -> None:
    kubeconfig = server.kubeconfig("ci", ["writers"])
    kubeconfig["clusters"][0]["cluster"]["proxy-url"] = proxy.url
    secret_id = stored(moto, yaml.safe_dump(kubeconfig))
    with connect(KubeconfigSecretDestination(secret_id, None, None), session=session) as store:
        assert store.write(cluster_secret("kc-proxied"), None).action == "created"
        assert store.get("argocd", "kc-proxied") is not None
    assert proxy.tunnels == [server.url.removeprefix("https://")]  # one kept-alive tunnel, TLS inside
    assert server.requests[-1].user == "ci"


@pytest.mark.parametrize("bypassed", [False, True], ids=["https_proxy", "no_proxy"])
def test_the_environments_proxy_is_used_unless_no_proxy_names_the_server(
    server: KubeApiServer,
    moto: MotoServer,
    session: boto3.Session,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    bypassed: bool,
) -> None:
    """Without a proxy-url, HTTPS_PROXY and NO_PROXY decide, as they do for kubectl (client-go)."""
    secret_id = stored(moto, yaml.safe_dump(server.kubeconfig("ci", ["writers"])))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypassed else "example.com")
    with connect(KubeconfigSecretDestination(secret_id, None, None), session=session) as store:
        assert store.get("argocd", "kc-none") is None
    assert proxy.tunnels == ([] if bypassed else [server.url.removeprefix("https://")])


def test_a_socks_proxy_url_is_refused_clearly(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session
) -> None:
    kubeconfig = server.kubeconfig("ci", ["writers"])
    kubeconfig["clusters"][0]["cluster"]["proxy-url"] = "socks5://127.0.0.1:1080"
    secret_id = stored(moto, yaml.safe_dump(kubeconfig))
    with pytest.raises(DestinationUnreachable, match="proxy scheme 'socks5' is not supported"):
        connect(KubeconfigSecretDestination(secret_id, None, None), session=session)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            yaml.safe_dump(
                {
                    "current-context": "c",
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "clusters": [{"name": "c", "cluster": {"server": "https://eks.example.com"}}],
                    "users": [
                        {"name": "u", "user": {"exec": {"command": "aws", "args": ["eks", "get-token"]}}}
                    ],
                }
            ),
            "uses exec",
        ),
        ("clusters: [unclosed\n  token: s3cr3t", "neither YAML nor JSON"),
        ("just a string", "not a kubeconfig"),
    ],
    ids=["exec", "not-yaml", "not-a-mapping"],
)
def test_unusable_kubeconfig(moto: MotoServer, session: boto3.Session, text: str, expected: str) -> None:
    secret_id = stored(moto, text)
    with pytest.raises(DestinationUnreachable, match=expected) as caught:
        connect(KubeconfigSecretDestination(secret_id, None, None), session=session)
    assert "s3cr3t" not in str(caught.value)


def test_missing_secret(session: boto3.Session) -> None:
    with pytest.raises(DestinationUnreachable, match="ResourceNotFoundException"):
        connect(KubeconfigSecretDestination("no-such-secret", None, None), session=session)


# -- what Argo CD would use ----------------------------------------------------------


def kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not installed")
    return found


def run_kubectl(
    kubeconfig: dict[str, object], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return subprocess.run(
        [kubectl(), "--kubeconfig", str(path), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},  # discovery cache under tmp_path, no proxies
        check=False,
    )


def test_kubectl_with_a_written_secrets_credentials(
    server: KubeApiServer, moto: MotoServer, session: boto3.Session, tmp_path: Path
) -> None:
    # The cluster credentials Argo CD will use: a client certificate the API trusts, its CA, its name.
    server.allow(user="bot-argocd", verbs=["get"], namespaces=["argocd"])
    cert, key = server.client_credentials("bot-argocd", ["argocd-readers"])
    manifest = cluster_secret(
        "kc-kubectl",
        server=server.url,
        tls={"caData": server.ca_pem, "certData": cert, "keyData": key, "serverName": server.hostname},
    )
    secret_id = stored(moto, yaml.safe_dump(server.kubeconfig("ci", ["writers"])))
    with connect(KubeconfigSecretDestination(secret_id, None, None), session=session) as store:
        store.write(manifest, None)
        written = store.get("argocd", "kc-kubectl")
    assert written is not None
    kubeconfig = kubeconfig_from_secret(written)

    version = run_kubectl(kubeconfig, tmp_path, "get", "--raw", "/version")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["gitVersion"] == "v1.33.1"
    assert server.requests[-1].user == "bot-argocd"

    # kubectl discovers the API, then reads the Secret back with the credentials inside it.
    read = run_kubectl(kubeconfig, tmp_path, "get", "secret", "kc-kubectl", "-n", "argocd", "-o", "json")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["data"] == manifest["data"]

    # The same, but with a client certificate from a CA the API server does not trust.
    cert, key = KubeApiServer().client_credentials("bot-argocd", ["argocd-readers"])  # another CA
    kubeconfig["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key-data": base64.b64encode(key).decode(),
    }
    refused = run_kubectl(kubeconfig, tmp_path, "get", "--raw", "/version")
    assert refused.returncode != 0
    assert "certificate" in refused.stderr, refused.stderr

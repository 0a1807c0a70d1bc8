"""The `teleport` section: the proxy address and join token, from the document or the environment."""

import pytest

from teleport_argocd.config import load_config

from .documents import ENV, document, problem_at, problems_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("teleport.example.com", "teleport.example.com:443"),
        ("teleport.example.com:3080", "teleport.example.com:3080"),
        ("127.0.0.1:3080", "127.0.0.1:3080"),
        ("[::1]", "[::1]:443"),
        ("[::1]:3080", "[::1]:3080"),
    ],
)
def test_proxy_addr_port_defaults_to_443(value: str, expected: str) -> None:
    config = load_config({"teleport": {"proxy_addr": value}, **document()}, env=ENV)
    assert config.teleport.proxy_addr == expected


@pytest.mark.parametrize(
    "value",
    [
        "https://teleport.example.com",
        "teleport.example.com/web",
        "teleport.example.com:99999",
        "teleport.example.com:0",
        "x:port",
        ":443",
    ],
)
def test_proxy_addr_must_be_host_and_port(value: str) -> None:
    message = problem_at({"teleport": {"proxy_addr": value}, **document()}, "teleport.proxy_addr")
    assert message.startswith("expected host[:port]")


def test_teleport_settings_come_from_env_when_omitted() -> None:
    config = load_config(document(), env=ENV)
    assert (config.teleport.proxy_addr, config.teleport.join_token) == (
        "teleport.example.com:443",
        "argocd-lambda",
    )
    assert config.teleport.insecure is False
    assert config.teleport.ca_pem is None


def test_document_wins_over_env() -> None:
    source = {"teleport": {"proxy_addr": "other.example.com:8443", "join_token": "other"}, **document()}
    config = load_config(source, env=ENV)
    assert (config.teleport.proxy_addr, config.teleport.join_token) == ("other.example.com:8443", "other")


def test_teleport_settings_required() -> None:
    env = {"DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "eu-west-1"}
    assert [str(p) for p in problems_of(document(), env=env)] == [
        "teleport.proxy_addr: required",
        "teleport.join_token: required",
    ]


def test_invalid_proxy_addr_from_env_names_the_variable() -> None:
    env = {**ENV, "TELEPORT_PROXY_ADDR": "https://teleport.example.com"}
    assert problem_at(document(), "TELEPORT_PROXY_ADDR", env=env).startswith("expected host[:port]")

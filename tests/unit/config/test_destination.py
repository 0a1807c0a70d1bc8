"""Destinations: from the document or the environment, and the deployment's allow-lists."""

from typing import Any

import pytest

from teleport_argocd.config import EksDestination, KubeconfigSecretDestination, load_config

from .documents import DEFAULT_DESTINATION, ENV, SECRET_ARN, TELEPORT_ENV, document, problem_at


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "eu-west-1"}, DEFAULT_DESTINATION),
        ({"DESTINATION_KUBECONFIG_SECRET": "kc"}, KubeconfigSecretDestination("kc", None, None)),
        (
            {"DESTINATION_KUBECONFIG_SECRET": SECRET_ARN},
            KubeconfigSecretDestination(SECRET_ARN, None, None),
        ),
        (
            {"DESTINATION_KUBECONFIG_SECRET": "kc", "DESTINATION_REGION": "us-east-1"},
            KubeconfigSecretDestination("kc", "us-east-1", None),
        ),
    ],
)
def test_default_destination_from_env(env: dict[str, str], expected: object) -> None:
    config = load_config(document(), env={**TELEPORT_ENV, **env})
    assert config.outputs[0].destination == expected


def test_top_level_destination_wins_over_env() -> None:
    source = {"destination": {"kubeconfig_secret": {"secret_id": "kc"}}, **document()}
    config = load_config(source, env=ENV)
    assert config.outputs[0].destination == KubeconfigSecretDestination("kc", None, None)


def test_write_mode_is_apply_unless_read_first_is_asked_for() -> None:
    eks = {"cluster_name": "other", "region": "us-west-2"}
    assert (
        load_config(document(destination={"eks": eks}), env=ENV).outputs[0].destination.write_mode == "apply"
    )
    read_first = document(destination={"eks": eks, "write_mode": "read-first"})
    assert load_config(read_first, env=ENV).outputs[0].destination == EksDestination(
        "other", "us-west-2", "read-first"
    )


def test_output_destination_wins_over_default() -> None:
    output = document(destination={"eks": {"cluster_name": "other", "region": "us-west-2"}})
    assert load_config(output, env=ENV).outputs[0].destination == EksDestination("other", "us-west-2")


@pytest.mark.parametrize(
    ("env", "path", "message"),
    [
        (TELEPORT_ENV, "outputs[0].destination", "required: no default destination is configured"),
        (
            {**TELEPORT_ENV, "DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_KUBECONFIG_SECRET": "kc"},
            "DESTINATION_EKS_CLUSTER",
            "set only one of DESTINATION_EKS_CLUSTER and DESTINATION_KUBECONFIG_SECRET",
        ),
        (
            {**TELEPORT_ENV, "DESTINATION_EKS_CLUSTER": "argocd"},
            "DESTINATION_REGION",
            "required with DESTINATION_EKS_CLUSTER",
        ),
        (
            {**TELEPORT_ENV, "DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "Europe"},
            "DESTINATION_REGION",
            "'Europe' is not an AWS region, e.g. eu-west-1",
        ),
    ],
)
def test_env_destination_problems(env: dict[str, str], path: str, message: str) -> None:
    assert problem_at(document(), path, env=env) == message


@pytest.mark.parametrize(
    ("destination", "path", "message"),
    [
        (
            {"eks": {"cluster_name": "a", "region": "eu-west-1"}, "kubeconfig_secret": {"secret_id": "kc"}},
            "outputs[0].destination",
            "only one of 'eks' and 'kubeconfig_secret' must be specified",
        ),
        ({}, "outputs[0].destination", "one of 'eks' and 'kubeconfig_secret' must be specified"),
        ({"eks": {"cluster_name": "argocd"}}, "outputs[0].destination.eks.region", "required"),
        ({"eks": {"region": "eu-west-1"}}, "outputs[0].destination.eks.cluster_name", "required"),
        (
            {"eks": {"cluster_name": "-bad", "region": "eu-west-1"}},
            "outputs[0].destination.eks.cluster_name",
            "'-bad' is not a valid EKS cluster name",
        ),
        (
            {"kubeconfig_secret": {"region": "eu-west-1"}},
            "outputs[0].destination.kubeconfig_secret.secret_id",
            "required",
        ),
        (
            {"kubeconfig_secret": {"secret_id": "kc", "contxt": "a"}},
            "outputs[0].destination.kubeconfig_secret.contxt",
            "unknown key (did you mean 'context'?)",
        ),
        ({"gke": {}}, "outputs[0].destination.gke", "unknown key"),
        (
            {"eks": {"cluster_name": "a", "region": "eu-west-1"}, "write_mode": "read"},
            "outputs[0].destination.write_mode",
            "must be one of apply, read-first, not 'read'",
        ),
        ("argocd", "outputs[0].destination", "expected a mapping, got a string"),
    ],
)
def test_destination_problems(destination: Any, path: str, message: str) -> None:
    assert problem_at(document(destination=destination), path) == message


# -- allowed destinations --------------------------------------------------------------------


@pytest.mark.parametrize("allowed", ["argocd", "eu-west-1/argocd", "other, eu-west-1/argocd", "", " , "])
def test_allowed_eks_cluster(allowed: str) -> None:
    env = {**ENV, "ALLOWED_EKS_CLUSTERS": allowed}
    assert load_config(document(), env=env).outputs[0].destination == DEFAULT_DESTINATION


@pytest.mark.parametrize("allowed", ["other", "us-east-1/argocd", "argocd-2"])
def test_eks_cluster_outside_the_allowed_list(allowed: str) -> None:
    env = {**TELEPORT_ENV, "ALLOWED_EKS_CLUSTERS": allowed}
    source = document(destination={"eks": {"cluster_name": "argocd", "region": "eu-west-1"}})
    assert problem_at(source, "outputs[0].destination.eks.cluster_name", env=env) == (
        "EKS cluster eu-west-1/argocd is not allowed by this deployment (ALLOWED_EKS_CLUSTERS):"
        " add it to the template parameter AllowedEksClusters"
    )


def test_default_destination_outside_the_allowed_list_is_reported_at_its_variable() -> None:
    env = {**ENV, "ALLOWED_EKS_CLUSTERS": "other"}
    assert problem_at(document(), "DESTINATION_EKS_CLUSTER", env=env).startswith(
        "EKS cluster eu-west-1/argocd is not allowed"
    )


def test_allowed_kubeconfig_secret() -> None:
    env = {**TELEPORT_ENV, "ALLOWED_KUBECONFIG_SECRETS": f"{SECRET_ARN},arn:other"}
    source = document(destination={"kubeconfig_secret": {"secret_id": SECRET_ARN}})
    assert load_config(source, env=env).outputs[0].destination == KubeconfigSecretDestination(
        SECRET_ARN, None, None
    )


@pytest.mark.parametrize("secret_id", ["kc", SECRET_ARN.replace("123456789012", "210987654321")])
def test_kubeconfig_secret_outside_the_allowed_list(secret_id: str) -> None:
    env = {**TELEPORT_ENV, "ALLOWED_KUBECONFIG_SECRETS": SECRET_ARN}
    source = document(destination={"kubeconfig_secret": {"secret_id": secret_id}})
    message = problem_at(source, "outputs[0].destination.kubeconfig_secret.secret_id", env=env)
    assert message.endswith("add the ARN to the template parameter AllowedKubeconfigSecretArns")


def test_allow_lists_do_not_apply_to_the_other_kind() -> None:
    env = {**ENV, "ALLOWED_KUBECONFIG_SECRETS": SECRET_ARN}
    assert load_config(document(), env=env).outputs[0].destination == DEFAULT_DESTINATION

"""template.yaml as `sam deploy` would submit it: least privilege that holds, destinations that reach
both IAM and the loader, VPC and tracing only when asked for, the README's table of grants, and
alarms fast enough for the certificate lifetime.

Roles are read from the template as `aws-sam-translator` translates it (standins/cfn.py), with the
intrinsics evaluated for given parameter values, so the tests check what CloudFormation would
deploy. Whether the grants are enough is not asked here: tests/iam runs every function's paths
under exactly these statements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from standins.cfn import Cfn
from standins.deployed import Deployment, as_list
from standins.template import ROOT, load_template
from teleport_argocd.config import DEFAULT_CREDENTIAL_TTL, load_config
from teleport_argocd.errors import ConfigError

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
RECONCILING = ("WorkerFunction", "AuditEventFunction", "ReloadFunction")
PROXY = {"TeleportProxyAddr": "teleport.example.com:443"}
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kc-AbCdEf"
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/teleport-events/stream/2026-01-01T00:00:00.000"
# Every option on: each function exists and every conditional grant is there.
EVERYTHING = {
    **PROXY,
    "DestinationEksCluster": "argocd",
    "AllowedEksClusters": "eu-west-1/argocd-dr",
    "DestinationKubeconfigSecretArn": SECRET,
    "AllowedKubeconfigSecretArns": SECRET.replace("kc-", "kc2-"),
    "KmsKeyArns": KEY,
    "ConfigKmsKeyArn": KEY.replace("1234abcd", "5678efab"),
    "SubnetIds": "subnet-0a,subnet-0b",
    "SecurityGroupIds": "sg-01",
    "EnableTracing": "true",
    "IngestDomainName": "teleport-events.example.com",
    "IngestCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b",
    "IngestTruststoreUri": "s3://truststore/ca.crt",
    "AuditEventsStreamArn": STREAM,
}
# EMF ingestion plus alarm evaluation, as the template's alarm comment allows.
ALARM_LAG_SECONDS = 180
TOPIC = "arn:aws:sns:us-east-1:123456789012:teleport-argocd-alarms"


def cfn(**overrides: str) -> Cfn:
    return Cfn(TEMPLATE, overrides)


def grants(deployment: Deployment, function: str, action: str) -> list[str]:
    found: list[str] = []
    for statement in deployment.statements(function):
        if action in as_list(statement["Action"]):
            found.extend(as_list(statement["Resource"]))
    return found


# -- least privilege -------------------------------------------------------------------------


@pytest.mark.parametrize("parameters", [PROXY, EVERYTHING], ids=["defaults", "everything"])
def test_no_function_carries_an_aws_managed_policy(parameters: dict[str, str]) -> None:
    """AWS managed policies allow logs on every log group, X-Ray and ENIs on "*"."""
    deployment = Deployment(parameters)
    for function in deployment.functions():
        assert deployment.aws_managed_policies(function) == [], function


def test_each_function_logs_only_to_its_own_log_group() -> None:
    deployment = Deployment(EVERYTHING)
    for function in deployment.functions():
        log_group = deployment.props(function)["LoggingConfig"]["LogGroup"]
        own = f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group}:*"
        for statement in deployment.statements(function):
            if any(a.startswith("logs:") for a in as_list(statement["Action"])):
                assert as_list(statement["Resource"]) == [own], function


@pytest.mark.parametrize("prefix, option", [("xray:", "EnableTracing"), ("ec2:", "SubnetIds")])
def test_tracing_and_network_interface_rights_only_when_asked_for(prefix: str, option: str) -> None:
    without = Deployment({**EVERYTHING, option: {"EnableTracing": "false", "SubnetIds": ""}[option]})
    within = Deployment(EVERYTHING)
    for function in within.functions():
        actions = {a for s in without.statements(function) for a in as_list(s["Action"])}
        assert not any(a.startswith(prefix) for a in actions), function
    for function in RECONCILING:
        actions = {a for s in within.statements(function) for a in as_list(s["Action"])}
        assert any(a.startswith(prefix) for a in actions), function


def test_functions_that_never_reach_teleport_stay_out_of_the_vpc() -> None:
    deployment = Deployment(EVERYTHING)
    for function in deployment.functions():
        in_vpc = "VpcConfig" in deployment.props(function)
        assert in_vpc == (function in RECONCILING), function
        if not in_vpc:
            assert not grants(deployment, function, "ec2:CreateNetworkInterface"), function
    assert "VpcConfig" not in Deployment(PROXY).props("WorkerFunction")


@pytest.mark.parametrize(
    "parameter, value",
    [
        ("AllowedEksClusters", "eu-west-1/argocd,"),
        ("AllowedEksClusters", "eu-west-1/a,,eu-west-1/b"),
        ("AllowedKubeconfigSecretArns", f",{SECRET}"),
        ("KmsKeyArns", f"{KEY},"),
        ("SubnetIds", "subnet-0a,"),
        ("SecurityGroupIds", ",sg-01"),
    ],
)
def test_a_list_with_an_empty_item_is_refused_at_deploy_naming_the_parameter(
    parameter: str, value: str
) -> None:
    [message] = cfn(**{parameter: value}).broken_rules()
    assert message.startswith(f"{parameter} has an empty item")
    assert cfn(**{parameter: value.strip(",").replace(",,", ",")}).broken_rules() == []


def test_the_defaults_break_no_rule() -> None:
    assert cfn().broken_rules() == []
    assert cfn(**EVERYTHING).broken_rules() == []


def test_the_ingest_stage_logs_each_request_as_json_without_bodies() -> None:
    deployment = Deployment(EVERYTHING)
    [stage] = deployment.resources("AWS::ApiGatewayV2::Stage")
    settings = deployment.props(stage)["AccessLogSettings"]
    log_group = deployment.props("IngestAccessLogGroup")["LogGroupName"]
    assert settings["DestinationArn"] == f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group}:*"
    fields = json.loads(settings["Format"])
    assert {"requestId", "status", "route", "clientCertSubject"} <= set(fields)
    assert not any("body" in str(v).lower() for v in fields.values())


# -- README: "What each function may do" ---------------------------------------------------------


def resource_labels(deployment: Deployment, function: str) -> dict[str, str]:
    """What the README calls each resource ARN the function's statements name."""
    d = deployment
    params = d.cfn.params
    labels = {"*": "*"}
    for logical_id in (
        "StateTable",
        "IdempotencyTable",
        "OutputRunsQueue",
        "FailedInvocationsQueue",
        "AuditEventBus",
    ):
        if d.cfn.exists(logical_id):
            labels[d.attribute(logical_id, "Arn")] = logical_id
    log_group = d.props(function)["LoggingConfig"]["LogGroup"]
    labels[f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group}:*"] = "its log group"
    labels[f"arn:aws:ssm:us-east-1:123456789012:parameter{params['ConfigParameterName']}"] = (
        "ConfigParameterName"
    )
    for name in ("ConfigKmsKeyArn", "DestinationKubeconfigSecretArn", "AuditEventsStreamArn"):
        labels[params[name]] = name
    for name in ("KmsKeyArns", "AllowedKubeconfigSecretArns"):
        labels.update({value: name for value in params[name]})
    labels[f"arn:aws:eks:us-east-1:123456789012:cluster/{params['DestinationEksCluster']}"] = (
        "DestinationEksCluster"
    )
    for item in filter(None, params["AllowedEksClusters"]):
        region, name = item.split("/")
        labels[f"arn:*:eks:{region}:*:cluster/{name}"] = "AllowedEksClusters"
    return labels


def deployed_grants(deployment: Deployment) -> set[tuple[str, str, str]]:
    found = set()
    for function in deployment.functions():
        labels = resource_labels(deployment, function)
        for statement in deployment.statements(function):
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    found.add((function, action, labels.get(resource, resource)))
    return found


def readme_grants() -> list[tuple[str, set[tuple[str, str, str]]]]:
    """(when, {(function, action, resource)}) for each row of the README's table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### What each function may do", 1)[1].split("\n\n|", 1)[1]
    rows = []
    for line in ("|" + section).splitlines()[2:]:
        if not line.startswith("| `"):
            break
        function, action_cell, resource_cell, when, _why = (c.strip() for c in line.strip("|").split("|"))
        actions = re.findall(r"`([a-z0-9]+:[A-Za-z]+)`", action_cell)
        resources = re.findall(r"`([^`]+)`", resource_cell) + (
            ["its log group"] if "its log group" in resource_cell else []
        )
        rows.append((when, {(function.strip("`"), a, r) for a in actions for r in resources}))
    return rows


def test_the_readme_lists_every_grant_of_every_function() -> None:
    listed = set().union(*(pairs for _, pairs in readme_grants()))
    assert listed == deployed_grants(Deployment(EVERYTHING))


def test_the_readme_says_which_grants_come_with_every_deployment() -> None:
    always = set().union(*(pairs for when, pairs in readme_grants() if when == "always"))
    deployment = Deployment({**PROXY, "DestinationKubeconfigSecretArn": SECRET})
    functions = set(deployment.functions())
    deployed = {g for g in deployed_grants(deployment) if g[2] != "DestinationKubeconfigSecretArn"}
    assert deployed == {g for g in always if g[0] in functions}


# -- destinations: IAM and the configuration loader agree ------------------------------------


CONFIG = """
teleport: {proxy_addr: teleport.example.com, join_token: t}
outputs:
  - type: kubernetes/argo-cd
    selectors: [{name: a}]
    destination: %s
"""


def loads(env: Mapping[str, str], destination: str) -> bool:
    try:
        load_config(CONFIG % destination, env=env)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("function", RECONCILING)
def test_every_allowed_eks_cluster_is_described_and_accepted(function: str) -> None:
    deployment = Deployment(
        {
            **PROXY,
            "AllowedEksClusters": "eu-west-1/argocd,us-east-1/argocd-dr",
            "DestinationEksCluster": "main",
        }
    )
    assert sorted(grants(deployment, function, "eks:DescribeCluster")) == [
        "arn:*:eks:eu-west-1:*:cluster/argocd",
        "arn:*:eks:us-east-1:*:cluster/argocd-dr",
        "arn:aws:eks:us-east-1:123456789012:cluster/main",
    ]
    env = deployment.environment(function)
    for region, name in [("eu-west-1", "argocd"), ("us-east-1", "argocd-dr"), ("us-east-1", "main")]:
        assert loads(env, f"{{eks: {{cluster_name: {name}, region: {region}}}}}")
    assert not loads(env, "{eks: {cluster_name: other, region: eu-west-1}}")
    assert not loads(env, "{eks: {cluster_name: argocd, region: us-east-1}}")


@pytest.mark.parametrize("function", RECONCILING)
def test_every_allowed_kubeconfig_secret_is_readable_and_accepted(function: str) -> None:
    arns = [f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:kc{i}-AbCdE{i}" for i in range(3)]
    deployment = Deployment(
        {
            **PROXY,
            "AllowedKubeconfigSecretArns": ",".join(arns[:2]),
            "DestinationKubeconfigSecretArn": arns[2],
        }
    )
    assert set(grants(deployment, function, "secretsmanager:GetSecretValue")) == set(arns)
    env = deployment.environment(function)
    assert all(loads(env, f"{{kubeconfig_secret: {{secret_id: '{arn}'}}}}") for arn in arns)
    assert not loads(
        env, "{kubeconfig_secret: {secret_id: 'arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf'}}"
    )


def test_only_the_destination_is_allowed_by_default() -> None:
    deployment = Deployment({**PROXY, "DestinationEksCluster": "main", "DestinationRegion": "us-west-2"})
    assert grants(deployment, "WorkerFunction", "eks:DescribeCluster") == [
        "arn:aws:eks:us-west-2:123456789012:cluster/main"
    ]
    assert grants(deployment, "WorkerFunction", "secretsmanager:GetSecretValue") == []
    env = deployment.environment("WorkerFunction")
    assert loads(env, "{eks: {cluster_name: main, region: us-west-2}}")
    assert not loads(env, "{eks: {cluster_name: other, region: us-west-2}}")
    # No kubeconfig secret allowed: the loader refuses one rather than letting IAM deny it later.
    assert not loads(
        env, "{kubeconfig_secret: {secret_id: 'arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf'}}"
    )


def test_kms_keys_decrypt_through_their_service_only() -> None:
    """moto does not model kms:ViaService (the decrypt happens inside SSM and Secrets Manager), so the
    condition is checked here."""
    assert grants(Deployment(PROXY), "WorkerFunction", "kms:Decrypt") == []
    deployment = Deployment({**PROXY, "KmsKeyArns": KEY, "ConfigKmsKeyArn": KEY})
    conditions = [
        s["Condition"]
        for s in deployment.statements("WorkerFunction")
        if "kms:Decrypt" in as_list(s["Action"])
    ]
    assert sorted(json.dumps(c, sort_keys=True) for c in conditions) == sorted(
        json.dumps(c, sort_keys=True)
        for c in (
            {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
            {"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}},
        )
    )


def test_renew_function_reaches_no_destination() -> None:
    deployment = Deployment(
        {**PROXY, "AllowedEksClusters": "eu-west-1/argocd", "DestinationKubeconfigSecretArn": SECRET}
    )
    assert grants(deployment, "RenewFunction", "eks:DescribeCluster") == []
    assert grants(deployment, "RenewFunction", "secretsmanager:GetSecretValue") == []


def test_no_function_uses_a_crud_policy_template() -> None:
    assert "DynamoDBCrudPolicy" not in (ROOT / "template.yaml").read_text()


# -- alarms ----------------------------------------------------------------------------------


def alarm(name: str, evaluator: Cfn) -> dict[str, Any]:
    props: dict[str, Any] = evaluator.eval(RESOURCES[name]["Properties"])
    return props


def default_seconds(parameter: str) -> int:
    return int(TEMPLATE["Parameters"][parameter]["Default"]) * 60


def test_failing_runs_alarm_within_half_the_certificate_lifetime() -> None:
    evaluator = cfn()
    half_life = DEFAULT_CREDENTIAL_TTL.total_seconds() / 2
    discovery = default_seconds("DiscoveryIntervalMinutes")
    timeout = TEMPLATE["Globals"]["Function"]["Timeout"]
    for name in ("RunsFailedAlarm", "RunsCrashedAlarm", "WorkerErrorsAlarm"):
        props = alarm(name, evaluator)
        # Every period of an outage holds a failed run: the next tick starts within one interval.
        assert props["Period"] >= discovery
        assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]
        worst = discovery + timeout + props["EvaluationPeriods"] * props["Period"] + ALARM_LAG_SECONDS
        assert worst < half_life, name
        assert props["TreatMissingData"] == "notBreaching"


def test_the_unreachable_clusters_alarm_is_opt_in_and_reads_what_runs_publish() -> None:
    resource = RESOURCES["UnreachableClustersAlarm"]
    assert not cfn().condition(resource["Condition"])
    evaluator = cfn(EnableUnreachableClustersAlarm="true")
    assert evaluator.condition(resource["Condition"])
    props = alarm("UnreachableClustersAlarm", evaluator)
    # The metric the renew and worker functions publish (teleport_argocd.metrics), under their
    # Powertools namespace and service.
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert (props["Namespace"], props["MetricName"]) == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        "ClustersUnreachable",
    )
    assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert props["TreatMissingData"] == "notBreaching"


def test_the_lifecycle_failure_alarm_is_opt_in_and_fires_once_on_what_runs_publish() -> None:
    resource = RESOURCES["LifecycleFailureAlarm"]
    assert not cfn().condition(resource["Condition"])
    evaluator = cfn(EnableLifecycleFailureAlarm="true", AlarmTopicArn=TOPIC)
    assert evaluator.condition(resource["Condition"])
    props = alarm("LifecycleFailureAlarm", evaluator)
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert (props["Namespace"], props["MetricName"]) == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        "TeleportLifecycleFailures",
    )
    assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    # One datum per recorded failure (teleport_argocd.metrics): one period holding it alarms, and no
    # OK notification follows while the failure lasts.
    assert (props["Statistic"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == ("Sum", 1, 1)
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [TOPIC] and "OKActions" not in props


def test_silence_and_expiry_alarm_within_half_the_certificate_lifetime() -> None:
    props = alarm("CertificateExpiryAlarm", cfn())
    assert props["TreatMissingData"] == "breaching"
    periods = {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m}
    [period] = periods
    assert period >= default_seconds("DiscoveryIntervalMinutes")
    # The period holding the last report, then EvaluationPeriods empty ones.
    worst = (props["EvaluationPeriods"] + 1) * period + ALARM_LAG_SECONDS
    assert worst < DEFAULT_CREDENTIAL_TTL.total_seconds() / 2
    assert int(props["Threshold"]) < DEFAULT_CREDENTIAL_TTL.total_seconds() / 2


def test_a_fresh_stack_is_quiet_until_its_configuration_exists() -> None:
    """The schedules report NotConfigured until the parameter exists (functions/renew/app.py); the
    expiry alarm reads it as a day left, so a new stack does not alarm while it is set up."""
    props = alarm("CertificateExpiryAlarm", cfn())
    names = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
    assert names == {"expiry": "CertificateExpirySeconds", "unconfigured": "NotConfigured"}
    [expression] = [m["Expression"] for m in props["Metrics"] if m.get("ReturnData")]
    assert expression.startswith("IF(FILL(unconfigured, 0) > 0, 86400,")
    assert '"NotConfigured"' in (ROOT / "functions/renew/app.py").read_text()


@pytest.mark.parametrize("minutes", TEMPLATE["Parameters"]["DiscoveryIntervalMinutes"]["AllowedValues"])
def test_every_discovery_interval_has_a_period_every_tick_lands_in(minutes: int) -> None:
    period = alarm("RunsFailedAlarm", cfn(DiscoveryIntervalMinutes=str(minutes)))["Period"]
    assert period >= minutes * 60 and period % 60 == 0


def test_crash_metric_filter_matches_what_the_worker_logs() -> None:
    pattern = RESOURCES["RunsCrashedMetricFilter"]["Properties"]["FilterPattern"]
    prefix = pattern.split('"')[1].rstrip("*")
    assert f'"{prefix}' in (ROOT / "functions/worker/app.py").read_text()

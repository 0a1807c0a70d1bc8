"""template.yaml: IAM is what the code calls, destinations reach both IAM and the loader, VPC is
optional, and the alarms are fast enough for the certificate lifetime.

The template's intrinsics are evaluated for given parameter values (`Cfn` below), so the
tests check what CloudFormation would deploy, not the text of the template.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from standins.template import ROOT, load_template
from teleport_argocd.config import DEFAULT_CREDENTIAL_TTL, load_config
from teleport_argocd.errors import ConfigError

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
NO_VALUE = object()
RECONCILING = ("WorkerFunction", "AuditEventFunction", "ReloadFunction")
STATE_ACTIONS = {
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
}
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# EMF ingestion plus alarm evaluation, as the template's alarm comment allows.
ALARM_LAG_SECONDS = 180


class Cfn:
    """Evaluates the intrinsics template.yaml uses, for one set of parameter values."""

    def __init__(self, **overrides: str) -> None:
        self.params: dict[str, Any] = {}
        for name, spec in TEMPLATE["Parameters"].items():
            value = str(overrides.get(name, spec.get("Default", "")))
            self.params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
        self.params.update(
            {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
        )

    def condition(self, name: str) -> bool:
        return bool(self.eval(TEMPLATE["Conditions"][name]))

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.eval(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = getattr(self, f"_{key}", None)
            if handler is not None:
                return handler(arg)
        return {k: v for k, v in ((k, self.eval(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _Ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        return self.params.get(name, f"<{name}>")

    def _If(self, arg: list[Any]) -> Any:
        return self.eval(arg[1] if self.condition(arg[0]) else arg[2])

    def _Condition(self, name: str) -> bool:
        return self.condition(name)

    def _Not(self, arg: list[Any]) -> bool:
        return not self.eval(arg[0])

    def _Equals(self, arg: list[Any]) -> bool:
        return bool(self.eval(arg[0]) == self.eval(arg[1]))

    def _Or(self, arg: list[Any]) -> bool:
        return any(self.eval(a) for a in arg)

    def _And(self, arg: list[Any]) -> bool:
        return all(self.eval(a) for a in arg)

    def _Join(self, arg: list[Any]) -> str:
        return str(arg[0]).join(self.eval(arg[1]))

    def _Split(self, arg: list[Any]) -> list[str]:
        return str(self.eval(arg[1])).split(arg[0])

    def _FindInMap(self, arg: list[Any]) -> Any:
        return TEMPLATE["Mappings"][arg[0]][str(self.eval(arg[1]))][arg[2]]

    def _Sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.eval(arg[1]))
        for name, value in {**self.params, **variables}.items():
            text = text.replace("${" + name + "}", str(value))
        return str(text)

    def _GetAtt(self, arg: str) -> str:
        return f"<{arg}>"


def role_statements(function: str, cfn: Cfn) -> Iterator[dict[str, Any]]:
    """Every policy statement the function's role carries (managed policies of ours included)."""
    props = RESOURCES[function]["Properties"]
    if "Role" in props:
        role = RESOURCES[props["Role"]["GetAtt"].split(".")[0]]["Properties"]
        documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
        documents += [
            RESOURCES[arn["Ref"]]["Properties"]["PolicyDocument"]
            for arn in role.get("ManagedPolicyArns", [])
            if isinstance(arn, dict) and "Ref" in arn
        ]
    else:
        documents = []
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "Ref" in policy:
                documents.append(RESOURCES[policy["Ref"]]["Properties"]["PolicyDocument"])
            elif isinstance(policy, dict) and "Statement" in policy:
                documents.append(policy)
            else:  # a SAM policy template: none of those used here touches DynamoDB
                assert not any("DynamoDB" in name for name in policy), policy
    for document in documents:
        yield from cfn.eval(document["Statement"])


def actions(statement: Mapping[str, Any]) -> set[str]:
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def dynamodb_grants(function: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in role_statements(function, Cfn()):
        dynamo = {a for a in actions(statement) if a.startswith("dynamodb:")}
        if dynamo:
            grants.setdefault(str(statement["Resource"]), set()).update(dynamo)
    return grants


def environment(cfn: Cfn, function: str) -> dict[str, str]:
    env = dict(cfn.eval(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]))
    local = RESOURCES[function]["Properties"].get("Environment", {}).get("Variables", {})
    env.update(cfn.eval(local))
    return {k: str(v) for k, v in env.items()}


# -- DynamoDB: what teleport_argocd.state and Powertools idempotency call ---------------------


def test_no_function_uses_a_crud_policy_template() -> None:
    assert "DynamoDBCrudPolicy" not in (ROOT / "template.yaml").read_text()


@pytest.mark.parametrize("function", ["WorkerFunction", "ReloadFunction"])
def test_reconciling_functions_get_only_the_state_calls(function: str) -> None:
    assert dynamodb_grants(function) == {"<StateTable.Arn>": STATE_ACTIONS}


def test_audit_function_also_gets_idempotency_records() -> None:
    assert dynamodb_grants("AuditEventFunction") == {
        "<StateTable.Arn>": STATE_ACTIONS,
        "<IdempotencyTable.Arn>": IDEMPOTENCY_ACTIONS,
    }


def test_renew_function_only_reads_registrations() -> None:
    assert dynamodb_grants("RenewFunction") == {"<StateTable.Arn>": {"dynamodb:Query"}}


def test_state_actions_are_the_calls_the_state_store_makes() -> None:
    source = (ROOT / "layers/core/teleport_argocd/state.py").read_text()
    operations = set(re.findall(r'"(query|scan|\w+_item)"', source))
    operations |= set(re.findall(r"\.(batch_\w+|transact_\w+)\(", source))
    called = {"dynamodb:" + "".join(word.title() for word in op.split("_")) for op in operations}
    assert called == STATE_ACTIONS


# -- destinations: IAM and the configuration loader agree ------------------------------------


def grants(function: str, cfn: Cfn, action: str) -> list[str]:
    found: list[str] = []
    for statement in role_statements(function, cfn):
        if action in actions(statement):
            resource = statement["Resource"]
            found.extend([resource] if isinstance(resource, str) else resource)
    return found


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
    cfn = Cfn(
        AllowedEksClusters="eu-west-1/argocd,us-east-1/argocd-dr",
        DestinationEksCluster="main",
    )
    assert sorted(grants(function, cfn, "eks:DescribeCluster")) == [
        "arn:*:eks:eu-west-1:*:cluster/argocd",
        "arn:*:eks:us-east-1:*:cluster/argocd-dr",
        "arn:aws:eks:eu-west-1:123456789012:cluster/main",
    ]
    env = environment(cfn, function)
    for region, name in [("eu-west-1", "argocd"), ("us-east-1", "argocd-dr"), ("eu-west-1", "main")]:
        assert loads(env, f"{{eks: {{cluster_name: {name}, region: {region}}}}}")
    assert not loads(env, "{eks: {cluster_name: other, region: eu-west-1}}")
    assert not loads(env, "{eks: {cluster_name: argocd, region: us-east-1}}")


@pytest.mark.parametrize("function", RECONCILING)
def test_every_allowed_kubeconfig_secret_is_readable_and_accepted(function: str) -> None:
    arns = [f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:kc{i}-AbCdE{i}" for i in range(3)]
    cfn = Cfn(AllowedKubeconfigSecretArns=",".join(arns[:2]), DestinationKubeconfigSecretArn=arns[2])
    assert set(grants(function, cfn, "secretsmanager:GetSecretValue")) == set(arns)
    env = environment(cfn, function)
    assert all(loads(env, f"{{kubeconfig_secret: {{secret_id: '{arn}'}}}}") for arn in arns)
    assert not loads(
        env, "{kubeconfig_secret: {secret_id: 'arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf'}}"
    )


def test_only_the_destination_is_allowed_by_default() -> None:
    cfn = Cfn(DestinationEksCluster="main", DestinationRegion="us-west-2")
    assert grants("WorkerFunction", cfn, "eks:DescribeCluster") == [
        "arn:aws:eks:us-west-2:123456789012:cluster/main"
    ]
    assert grants("WorkerFunction", cfn, "secretsmanager:GetSecretValue") == []
    env = environment(cfn, "WorkerFunction")
    assert loads(env, "{eks: {cluster_name: main, region: us-west-2}}")
    assert not loads(env, "{eks: {cluster_name: other, region: us-west-2}}")
    # No kubeconfig secret allowed: the loader refuses one rather than letting IAM deny it later.
    assert not loads(
        env, "{kubeconfig_secret: {secret_id: 'arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf'}}"
    )


def test_kms_keys_decrypt_through_secrets_manager_only() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert grants("WorkerFunction", Cfn(), "kms:Decrypt") == []
    (statement,) = [
        s for s in role_statements("WorkerFunction", Cfn(KmsKeyArns=key)) if "kms:Decrypt" in actions(s)
    ]
    assert statement["Resource"] == [key]
    assert statement["Condition"] == {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}


def test_renew_function_reaches_no_destination() -> None:
    cfn = Cfn(AllowedEksClusters="eu-west-1/argocd", DestinationKubeconfigSecretArn="arn:x")
    assert grants("RenewFunction", cfn, "eks:DescribeCluster") == []
    assert grants("RenewFunction", cfn, "secretsmanager:GetSecretValue") == []


# -- VPC ------------------------------------------------------------------------------------


VPC_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


@pytest.mark.parametrize("function", RECONCILING)
def test_vpc_config_and_eni_rights_only_with_subnets(function: str) -> None:
    props = RESOURCES[function]["Properties"]
    role = RESOURCES[props["Role"]["GetAtt"].split(".")[0]]["Properties"]

    without = Cfn()
    assert without.eval(props["VpcConfig"]) is NO_VALUE
    assert VPC_POLICY not in without.eval(role["ManagedPolicyArns"])

    within = Cfn(SubnetIds="subnet-0a,subnet-0b", SecurityGroupIds="sg-01")
    assert within.eval(props["VpcConfig"]) == {
        "SubnetIds": ["subnet-0a", "subnet-0b"],
        "SecurityGroupIds": ["sg-01"],
    }
    assert VPC_POLICY in within.eval(role["ManagedPolicyArns"])


def test_functions_that_never_reach_teleport_stay_out_of_the_vpc() -> None:
    for name, resource in RESOURCES.items():
        if resource["Type"] == "AWS::Serverless::Function" and name not in RECONCILING:
            assert "VpcConfig" not in resource["Properties"], name
    assert "VpcConfig" not in TEMPLATE["Globals"]["Function"]


# -- alarms ----------------------------------------------------------------------------------


def alarm(name: str, cfn: Cfn) -> dict[str, Any]:
    props: dict[str, Any] = cfn.eval(RESOURCES[name]["Properties"])
    return props


def default_seconds(parameter: str) -> int:
    return int(TEMPLATE["Parameters"][parameter]["Default"]) * 60


def test_failing_runs_alarm_within_half_the_certificate_lifetime() -> None:
    cfn = Cfn()
    half_life = DEFAULT_CREDENTIAL_TTL.total_seconds() / 2
    discovery = default_seconds("DiscoveryIntervalMinutes")
    timeout = TEMPLATE["Globals"]["Function"]["Timeout"]
    for name in ("RunsFailedAlarm", "RunsCrashedAlarm", "WorkerErrorsAlarm"):
        props = alarm(name, cfn)
        # Every period of an outage holds a failed run: the next tick starts within one interval.
        assert props["Period"] >= discovery
        assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]
        worst = discovery + timeout + props["EvaluationPeriods"] * props["Period"] + ALARM_LAG_SECONDS
        assert worst < half_life, name
        assert props["TreatMissingData"] == "notBreaching"


def test_the_unreachable_clusters_alarm_is_opt_in_and_reads_what_runs_publish() -> None:
    resource = RESOURCES["UnreachableClustersAlarm"]
    assert not Cfn().condition(resource["Condition"])
    cfn = Cfn(EnableUnreachableClustersAlarm="true")
    assert cfn.condition(resource["Condition"])
    props = alarm("UnreachableClustersAlarm", cfn)
    # The metric the renew and worker functions publish (teleport_argocd.metrics), under their
    # Powertools namespace and service.
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert (props["Namespace"], props["MetricName"]) == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        "ClustersUnreachable",
    )
    assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert props["TreatMissingData"] == "notBreaching"


def test_silence_and_expiry_alarm_within_half_the_certificate_lifetime() -> None:
    props = alarm("CertificateExpiryAlarm", Cfn())
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
    props = alarm("CertificateExpiryAlarm", Cfn())
    names = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
    assert names == {"expiry": "CertificateExpirySeconds", "unconfigured": "NotConfigured"}
    [expression] = [m["Expression"] for m in props["Metrics"] if m.get("ReturnData")]
    assert expression.startswith("IF(FILL(unconfigured, 0) > 0, 86400,")
    assert '"NotConfigured"' in (ROOT / "functions/renew/app.py").read_text()


@pytest.mark.parametrize("minutes", TEMPLATE["Parameters"]["DiscoveryIntervalMinutes"]["AllowedValues"])
def test_every_discovery_interval_has_a_period_every_tick_lands_in(minutes: int) -> None:
    period = alarm("RunsFailedAlarm", Cfn(DiscoveryIntervalMinutes=str(minutes)))["Period"]
    assert period >= minutes * 60 and period % 60 == 0


def test_crash_metric_filter_matches_what_the_worker_logs() -> None:
    pattern = RESOURCES["RunsCrashedMetricFilter"]["Properties"]["FilterPattern"]
    prefix = pattern.split('"')[1].rstrip("*")
    assert f'"{prefix}' in (ROOT / "functions/worker/app.py").read_text()

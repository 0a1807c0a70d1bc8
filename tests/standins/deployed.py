"""The stack as deployed: translated template.yaml, its resources in moto, each function with its own role.

`Deployment` is the CloudFormation template `sam deploy` would submit for a set of parameters,
with physical names for its resources, each function's environment and its role's statements.
`DeployedStack` provisions it on an IAM-enforcing moto (standins/moto_iam.py), next to the
Teleport and Kubernetes stand-ins, and runs each function in an execution environment of its own
(standins/lambdas.py) with the credentials of a role that holds exactly its statements. A call the
template does not allow is refused there as AWS would refuse it, and recorded in `denials()`.
"""

from __future__ import annotations

import base64
import functools
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from standins.aws import ACCOUNT_ID, REGION, AwsCredentials, MotoServer
from standins.cfn import Cfn, translate
from standins.kubeapi import APPLICATIONS, KubeApiServer
from standins.lambdas import ExecutionEnvironment
from standins.stack import BOT_NAME, WRITER, writer_kubeconfig
from standins.teleport import TeleportStandin
from standins.template import ROOT

STACK = "teleport-argocd"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
AWS_MANAGED = "arn:aws:iam::aws:policy/"


@functools.cache
def _code_folders() -> dict[str, str]:
    """Function logical id → its folder under functions/ (the SAM template's CodeUri)."""
    template = yaml_parse((ROOT / "template.yaml").read_text())
    return {
        logical_id: resource["Properties"]["CodeUri"].strip("/").split("/")[-1]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def _physical(logical_id: str, resource: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The physical id CloudFormation would give a resource (`Ref`) and its attributes (`GetAtt`)."""
    kind, name = resource["Type"], f"{STACK}-{logical_id}"
    region_account = f"{REGION}:{ACCOUNT_ID}"
    if kind == "AWS::DynamoDB::Table":
        return name, {"Arn": f"arn:aws:dynamodb:{region_account}:table/{name}"}
    if kind == "AWS::SQS::Queue":
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
        return url, {"Arn": f"arn:aws:sqs:{region_account}:{name}", "QueueName": name}
    if kind == "AWS::IAM::Role":
        return name, {"Arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"}
    if kind == "AWS::IAM::ManagedPolicy":
        return f"arn:aws:iam::{ACCOUNT_ID}:policy/{name}", {}
    if kind == "AWS::Lambda::Function":
        return name, {"Arn": f"arn:aws:lambda:{region_account}:function:{name}"}
    if kind == "AWS::Events::Rule":
        return name, {"Arn": f"arn:aws:events:{region_account}:rule/{name}"}
    return name, {}


@dataclass
class Deployment:
    """template.yaml translated for `parameters`, with physical names for what it creates."""

    parameters: Mapping[str, str]
    template: dict[str, Any] = field(init=False)
    cfn: Cfn = field(init=False)

    def __post_init__(self) -> None:
        self.template = translate(self.parameters)
        refs: dict[str, str] = {}
        attributes: dict[str, str] = {}
        for logical_id, resource in self.template["Resources"].items():
            ref, attrs = _physical(logical_id, resource)
            refs[logical_id] = ref
            attributes.update({f"{logical_id}.{k}": v for k, v in attrs.items()})
        self.cfn = Cfn(self.template, self.parameters, refs, attributes, region=REGION)
        # Resources named by a property: the bus and the log groups.
        for logical_id, resource in self.template["Resources"].items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Events::EventBus":
                refs[logical_id] = self.cfn.eval(props["Name"])
                attributes[f"{logical_id}.Arn"] = (
                    f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{refs[logical_id]}"
                )
            if resource["Type"] == "AWS::Logs::LogGroup":
                refs[logical_id] = self.cfn.eval(props["LogGroupName"])
                attributes[f"{logical_id}.Arn"] = (
                    f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{refs[logical_id]}:*"
                )

    def resources(self, kind: str) -> list[str]:
        """Logical ids of the resources of `kind` this deployment creates."""
        return [
            logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == kind and self.cfn.exists(logical_id)
        ]

    def props(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.cfn.eval(self.template["Resources"][logical_id].get("Properties", {}))
        return props

    def ref(self, logical_id: str) -> str:
        return str(self.cfn.eval({"Ref": logical_id}))

    def attribute(self, logical_id: str, name: str) -> str:
        return str(self.cfn.eval({"Fn::GetAtt": [logical_id, name]}))

    def functions(self) -> list[str]:
        return self.resources("AWS::Lambda::Function")

    def folder(self, function: str) -> str:
        return _code_folders()[function]

    def handler(self, function: str) -> str:
        return str(self.props(function)["Handler"]).split(".", 1)[1]

    def role(self, function: str) -> str:
        """The logical id of the function's execution role."""
        role = self.template["Resources"][function]["Properties"]["Role"]
        return str(role["Fn::GetAtt"][0])

    def policy_documents(self, function: str) -> dict[str, dict[str, Any]]:
        """Every policy document the function's role holds, by name: inline and our managed ones."""
        props = self.props(self.role(function))
        documents = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])}
        ours = {self.ref(p): p for p in self.resources("AWS::IAM::ManagedPolicy")}
        for arn in props.get("ManagedPolicyArns", []):
            if arn in ours:
                documents[ours[arn]] = self.props(ours[arn])["PolicyDocument"]
        return documents

    def aws_managed_policies(self, function: str) -> list[str]:
        """AWS managed policies on the function's role (their statements are AWS's, not ours)."""
        props = self.props(self.role(function))
        return [arn for arn in props.get("ManagedPolicyArns", []) if arn.startswith(AWS_MANAGED)]

    def statements(self, function: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for document in self.policy_documents(function).values():
            statement = document["Statement"]
            found.extend(statement if isinstance(statement, list) else [statement])
        return found

    def environment(self, function: str) -> dict[str, str]:
        variables = self.props(function).get("Environment", {}).get("Variables", {})
        return {k: str(v) for k, v in variables.items()}


def as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@dataclass
class DeployedStack:
    """A deployment on an IAM-enforcing moto; start with `with DeployedStack(...) as stack:`.

    `parameters` are the stack's (TeleportProxyAddr is the Teleport stand-in's); `kubeconfig_secrets`
    and `eks_clusters` are created first, so parameters can name their ARNs through `setup`.
    """

    clusters: Mapping[str, Mapping[str, str]]
    kubeconfig_secrets: Sequence[str] = ("argocd-kubeconfig",)
    eks_clusters: Sequence[str] = ()
    audit_table: bool = False  # Teleport's DynamoDB audit events table, with a stream
    revoke: Mapping[str, str] = field(default_factory=dict)  # function → action left out of its role
    # function → variables the template leaves to the code's defaults, set to shorten a wait: they
    # change how long a function waits, never what it calls or with which role.
    environment: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    # Parameters that name what `start` created first (secret ARNs, the audit stream).
    derive: Callable[[DeployedStack], Mapping[str, str]] | None = None
    moto: MotoServer = field(init=False)
    teleport: TeleportStandin = field(init=False)
    kube: KubeApiServer = field(init=False)
    deployment: Deployment = field(init=False)
    secret_arns: dict[str, str] = field(default_factory=dict)
    audit_stream_arn: str = ""
    credentials: dict[str, AwsCredentials] = field(default_factory=dict)
    _environments: dict[str, ExecutionEnvironment] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] = field(default_factory=tempfile.TemporaryDirectory)

    def __enter__(self) -> DeployedStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DeployedStack:
        tmp = Path(self._tmp.name)
        self.moto = MotoServer(
            iam=True, denials=tmp / "denials.jsonl", granted=tmp / "granted.jsonl", clock=tmp / "sqs-clock"
        ).start()
        self.moto.admin = self._admin()
        self.teleport = TeleportStandin(sts_endpoint=self.moto.endpoint).start()
        self.teleport.add_role("argocd-clusters", kubernetes_labels={"*": "*"})
        self.teleport.add_bot(BOT_NAME, roles=["argocd-clusters"])
        for name, labels in self.clusters.items():
            self.teleport.add_kube_cluster(name, labels=dict(labels))
        # Named "localhost" so an EKS endpoint is a DNS name as a real one is; kubeconfigs name it.
        self.kube = KubeApiServer(
            "localhost", eks_cluster_name=self.eks_clusters[0] if self.eks_clusters else None
        )
        self.kube.start()
        self.kube.allow(
            user=WRITER, verbs=("get", "create", "update", "patch", "delete"), namespaces=("argocd",)
        )
        # The pruning guard's read, as scripts/rbac.py prints it.
        self.kube.allow(user=WRITER, verbs=("list",), resources=(APPLICATIONS,), namespaces=("argocd",))
        self._create_destinations()
        if self.derive is not None:
            self.parameters.update(self.derive(self))
        self.parameters.setdefault("TeleportProxyAddr", self.teleport.proxy_addr)
        self.deployment = Deployment(self.parameters)
        self._provision()
        self.moto.enforce_signing()
        return self

    def stop(self) -> None:
        for environment in self._environments.values():
            environment.stop()
        for server in ("kube", "teleport", "moto"):
            if hasattr(self, server):
                getattr(self, server).stop()
        self._tmp.cleanup()

    # -- provisioning, with the admin's credentials before IAM is enforced ----------------------

    def _admin(self) -> AwsCredentials:
        iam = self.moto.client("iam")
        iam.create_user(UserName="admin")
        allow_all = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(allow_all))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        return AwsCredentials(
            key["AccessKeyId"], key["SecretAccessKey"], None, f"arn:aws:iam::{ACCOUNT_ID}:user/admin"
        )

    def _create_destinations(self) -> None:
        secrets = self.moto.client("secretsmanager")
        for name in self.kubeconfig_secrets:
            self.secret_arns[name] = secrets.create_secret(
                Name=name, SecretString=writer_kubeconfig(self.kube)
            )["ARN"]
        for name in self.eks_clusters:
            self.moto.client("eks").create_cluster(
                name=name,
                roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/eks-cluster",
                resourcesVpcConfig={},
                tags={
                    "standin:endpoint": self.kube.url.replace("127.0.0.1", "localhost"),
                    "standin:ca": base64.b64encode(self.kube.ca_pem).decode(),
                },
            )
        if self.audit_table:
            # Teleport's audit table keys (lib/events/dynamoevents: SessionID + EventIndex).
            created = self.moto.client("dynamodb").create_table(
                TableName="teleport-audit-events",
                KeySchema=[
                    {"AttributeName": "SessionID", "KeyType": "HASH"},
                    {"AttributeName": "EventIndex", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "SessionID", "AttributeType": "S"},
                    {"AttributeName": "EventIndex", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
            )
            self.audit_stream_arn = created["TableDescription"]["LatestStreamArn"]

    def _provision(self) -> None:
        d = self.deployment
        dynamodb, sqs, events = (self.moto.client(s) for s in ("dynamodb", "sqs", "events"))
        for table in d.resources("AWS::DynamoDB::Table"):
            props = d.props(table)
            dynamodb.create_table(
                TableName=d.ref(table),
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
            )
        for queue in d.resources("AWS::SQS::Queue"):
            sqs.create_queue(QueueName=d.attribute(queue, "QueueName"))
        for bus in d.resources("AWS::Events::EventBus"):
            events.create_event_bus(Name=d.ref(bus))
        self._audit_rule_to_queue()
        iam = self.moto.client("iam")
        for function in d.functions():
            role = d.ref(d.role(function))
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
            for name, document in d.policy_documents(function).items():
                # SAM writes its policy templates without a Version; IAM then reads them as
                # 2008-10-17, which moto refuses (no policy variables are used here either way).
                document = {"Version": "2012-10-17", **self._without(document, self.revoke.get(function))}
                iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))
        self.teleport.add_iam_token(
            "teleport-argocd-iam",
            bot_name=BOT_NAME,
            allow=[
                {
                    "aws_account": ACCOUNT_ID,
                    "aws_arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{d.ref(d.role(f))}/*",
                }
                for f in d.functions()
            ],
        )
        sts = self.moto.client("sts")
        for function in d.functions():
            role_arn = d.attribute(d.role(function), "Arn")
            got = sts.assume_role(RoleArn=role_arn, RoleSessionName=d.ref(function))
            c = got["Credentials"]
            creds = AwsCredentials(
                c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], got["AssumedRoleUser"]["Arn"]
            )
            self.credentials[function] = creds
            # EKS destinations: the access entry maps the role to the group the Role binds.
            self.kube.sts.register(creds)
            self.kube.add_access_entry(role_arn, groups=["teleport-argocd-secret-writers"])
        self.kube.allow(
            group="teleport-argocd-secret-writers",
            verbs=("get", "create", "update", "patch", "delete"),
            namespaces=("argocd",),
        )
        self.kube.allow(
            group="teleport-argocd-secret-writers",
            verbs=("list",),
            resources=(APPLICATIONS,),
            namespaces=("argocd",),
        )

    @staticmethod
    def _without(document: dict[str, Any], action: str | None) -> dict[str, Any]:
        if action is None:
            return document
        statements = []
        for statement in as_list_of_dicts(document["Statement"]):
            kept = [a for a in as_list(statement["Action"]) if a != action]
            if kept:
                statements.append({**statement, "Action": kept})
        return {**document, "Statement": statements}

    def _audit_rule_to_queue(self) -> None:
        """The audit rule as the template declares it, with a queue standing in for its target
        (moto cannot invoke a function); `deliver_audit_events` hands what lands there on."""
        d = self.deployment
        events, sqs = self.moto.client("events"), self.moto.client("sqs")
        for rule in d.resources("AWS::Events::Rule"):
            props = d.props(rule)
            sqs.create_queue(QueueName=f"{rule}-target")
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{rule}-target"
            events.put_rule(
                Name=d.ref(rule),
                EventBusName=props["EventBusName"],
                EventPattern=json.dumps(props["EventPattern"]),
            )
            events.put_targets(
                Rule=d.ref(rule), EventBusName=props["EventBusName"], Targets=[{"Id": "function", "Arn": arn}]
            )

    # -- running ------------------------------------------------------------------------

    def function(self, logical_id: str) -> ExecutionEnvironment:
        """The function's execution environment (started on first use, then warm)."""
        if logical_id not in self._environments:
            d = self.deployment
            env = {
                **d.environment(logical_id),
                **self.credentials[logical_id].env(),
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.moto.endpoint,
                "AWS_LAMBDA_FUNCTION_NAME": d.ref(logical_id),
            }
            overrides = self.environment.get(logical_id, {})
            assert not overrides.keys() & d.environment(logical_id).keys(), "the template sets these"
            env.update(overrides)
            self._environments[logical_id] = ExecutionEnvironment(
                d.folder(logical_id), env, handler=d.handler(logical_id)
            ).start()
        return self._environments[logical_id]

    def client(self, service: str, function: str | None = None) -> Any:
        """A client with the admin's credentials, or with `function`'s role (as Lambda's pollers use it)."""
        return self.moto.client(service, creds=self.credentials[function] if function else None)

    def put_config(self, outputs: Sequence[Mapping[str, Any]]) -> None:
        import yaml

        config = {"teleport": {"ca_pem": self.teleport.web_ca_pem.decode()}, "outputs": list(outputs)}
        self.client("ssm").put_parameter(
            Name=self.deployment.cfn.params["ConfigParameterName"],
            Value=yaml.safe_dump(config),
            Type="SecureString",
            Overwrite=True,
        )

    def denials(self) -> list[dict[str, str]]:
        """Every call moto refused since the stack started: action, resource, principal."""
        return self._decisions("denials.jsonl")

    def granted(self) -> list[dict[str, str]]:
        """Every call moto allowed since the stack started: action, resource, principal."""
        return self._decisions("granted.jsonl")

    def _decisions(self, name: str) -> list[dict[str, str]]:
        path = Path(self._tmp.name) / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def advance_sqs_clock(self, seconds: float) -> None:
        """Move SQS's clock forward, as if `seconds` had passed (a delayed message becomes visible)."""
        path = Path(self._tmp.name) / "sqs-clock"
        ahead = float(path.read_text()) if path.exists() else 0.0
        path.write_text(str(ahead + seconds))

    def queue_url(self, logical_id: str) -> str:
        return f"{self.moto.endpoint}/{ACCOUNT_ID}/{self.deployment.attribute(logical_id, 'QueueName')}"

    def messages(self, queue_url: str, function: str | None = None) -> Iterator[dict[str, Any]]:
        """Receive and delete every message (with `function`'s role, as its event source mapping does)."""
        sqs = self.client("sqs", function)
        while True:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return
            for message in got["Messages"]:
                yield message
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def as_list_of_dicts(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else [value]

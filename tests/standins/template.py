"""Reads template.yaml so the local stack creates its tables and audit rule as the template declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short-form intrinsics (!Ref, !Sub, ...) as plain values."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {tag_suffix: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = ROOT / "template.yaml") -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


def create_tables(dynamodb: Any, names: dict[str, str], template: dict[str, Any] | None = None) -> None:
    """Create each `AWS::DynamoDB::Table` named in `names` (logical id → table name) with its TTL."""
    resources = (template or load_template())["Resources"]
    for logical_id, table_name in names.items():
        props = resources[logical_id]["Properties"]
        dynamodb.create_table(
            TableName=table_name,
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )


def template_default(template: dict[str, Any], value: Any) -> Any:
    """Resolve `!Ref Parameter` to the parameter's default, as a deploy with defaults would."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return template["Parameters"][value["Ref"]]["Default"]
    if isinstance(value, dict):
        return {k: template_default(template, v) for k, v in value.items()}
    if isinstance(value, list):
        return [template_default(template, v) for v in value]
    return value


def audit_rule(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The audit function's EventBridge rule: its event pattern and the source, at the defaults."""
    template = template or load_template()
    rule = template["Resources"]["AuditEventFunction"]["Properties"]["Events"]["TeleportAudit"]["Properties"]
    return {
        "pattern": template_default(template, rule["Pattern"]),
        "source": template_default(template, {"Ref": "AuditEventSource"}),
        "bus": template_default(template, {"Ref": "AuditEventBusName"}),
    }

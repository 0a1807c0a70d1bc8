"""template.yaml as CloudFormation would deploy it: SAM's own translator, then the intrinsics evaluated.

`translate` runs `aws-sam-translator` (what `sam deploy` hands CloudFormation), so the roles SAM
generates and the policies it attaches are the real ones. `Cfn` evaluates the intrinsics the
template uses for one set of parameter values and, where given, the physical names and ARNs of
the stack's resources, so tests check what a stack would hold, not the template's text.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from standins.aws import ACCOUNT_ID, REGION
from standins.template import ROOT

NO_VALUE = object()


class _BundledPolicies:
    """The AWS managed policy names SAM may attach, from the map the translator ships (no IAM call)."""

    def load(self) -> dict[str, str]:
        return get_bundled_managed_policy_map("aws") or {}


@functools.cache
def _sam_template() -> str:
    return (ROOT / "template.yaml").read_text()


def translate(parameters: Mapping[str, str]) -> dict[str, Any]:
    """The CloudFormation template `sam deploy` would submit for these parameter values."""
    template = yaml_parse(_sam_template())
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:  # what `sam package` puts there
                props[key] = f"s3://teleport-argocd-artifacts/{logical_id}.zip"
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = REGION  # the translator reads the region for ARNs it builds
    try:
        values = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"}
        return transform(template, {**values, **parameters}, _BundledPolicies())
    finally:
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


@dataclass
class Cfn:
    """Evaluates template intrinsics for one set of parameter values.

    Accepts the short-form keys `standins.template.load_template` keeps (`If`, `Ref`) and the
    long form the translator writes (`Fn::If`, `Ref`). `refs` and `attributes` give resources'
    physical ids (`Ref`) and attributes (`Fn::GetAtt`); unknown ones evaluate to `<Name>`.
    """

    template: dict[str, Any]
    overrides: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
    region: str = "eu-west-1"
    params: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.params = {}
        for name, spec in self.template["Parameters"].items():
            value = str(self.overrides.get(name, spec.get("Default", "")))
            self.params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
        self.params.update(
            {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"}
        )
        self.params["AWS::StackName"] = "teleport-argocd"

    def condition(self, name: str) -> bool:
        return bool(self.eval(self.template["Conditions"][name]))

    def exists(self, logical_id: str) -> bool:
        """Whether the resource is in the stack for these parameters (its Condition holds)."""
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def eval(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.eval(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = getattr(self, "_" + key.removeprefix("Fn::"), None)
            if handler is not None:
                return handler(arg)
        return {k: v for k, v in ((k, self.eval(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _Ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.params:
            return self.params[name]
        return self.refs.get(name, f"<{name}>")

    def _GetAtt(self, arg: str | list[str]) -> str:
        name = arg if isinstance(arg, str) else ".".join(arg)
        return self.attributes.get(name, f"<{name}>")

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

    def _Select(self, arg: list[Any]) -> Any:
        return self.eval(arg[1])[int(self.eval(arg[0]))]

    def _FindInMap(self, arg: list[Any]) -> Any:
        return self.template["Mappings"][arg[0]][str(self.eval(arg[1]))][arg[2]]

    def _Sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.eval(arg[1]))
        names = {**self.params, **self.refs, **self.attributes, **variables}
        for name in sorted(names, key=len, reverse=True):
            text = text.replace("${" + name + "}", str(names[name]))
        return str(text)

    # -- Rules: CloudFormation's parameter assertions ("Template rules" in the CloudFormation
    # user guide); only the functions the template uses.

    def _EachMemberEquals(self, arg: list[Any]) -> bool:
        values, expected = self.eval(arg[0]), self.eval(arg[1])
        return all(v == expected for v in values)

    def _Contains(self, arg: list[Any]) -> bool:
        return self.eval(arg[1]) in self.eval(arg[0])

    def broken_rules(self) -> list[str]:
        """The AssertDescriptions of the template's Rules these parameters fail, as a deploy refuses them."""
        broken: list[str] = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.eval(copy.deepcopy(rule["RuleCondition"])):
                continue
            broken += [a["AssertDescription"] for a in rule["Assertions"] if not self.eval(a["Assert"])]
        return broken

"""Kubernetes naming rules (k8s.io/apimachinery `validation`), so bad names are refused at load time.

A leaf: configuration validates with these and rendering checks templated label values with
them, and it imports nothing of ours.
"""

from __future__ import annotations

import re

_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
_DNS_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_NAME_PART_RE = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_NAME_PART_RULE = (
    "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
)


def is_dns_label(value: str) -> bool:
    """RFC 1123 label, as Kubernetes requires for namespace names."""
    return len(value) <= 63 and _DNS_LABEL_RE.fullmatch(value) is not None


def is_dns_subdomain(value: str) -> bool:
    """RFC 1123 subdomain, as Kubernetes requires for Secret names."""
    return len(value) <= 253 and _DNS_SUBDOMAIN_RE.fullmatch(value) is not None


def qualified_name_problem(key: str) -> str | None:
    """Why Kubernetes would refuse `key` as a label or annotation key, or None if it would not."""
    parts = key.split("/")
    if len(parts) > 2:
        return "must be a name with an optional DNS prefix, e.g. 'example.com/my-name', with at most one '/'"
    name = parts[-1]
    if len(parts) == 2 and not is_dns_subdomain(parts[0]):
        return "prefix (before '/') must be a lowercase DNS subdomain, e.g. 'example.com'"
    if not name:
        return "name part must not be empty"
    if len(name) > 63:
        return "name part must be at most 63 characters"
    if not _NAME_PART_RE.fullmatch(name):
        return f"name part must consist of {_NAME_PART_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    """Why Kubernetes would refuse `value` as a label value, or None if it would not."""
    if len(value) > 63:
        return "must be at most 63 characters"
    if value and not _NAME_PART_RE.fullmatch(value):
        return f"must be empty or consist of {_NAME_PART_RULE}"
    return None

"""The IAM statements of the templates under deploy/: every policy document, every role's grants.

Conditional statements (``Fn::If``) count with both branches, so a role is judged by the
most it can ever be granted.  A role's grants include the managed policies it attaches: a
``!Ref`` to a policy of the same template, or a parameter that names a policy of another
template (:data:`EXTERNAL_POLICIES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy.templates import TEMPLATE_DIR, TEMPLATES, load

IAM_POLICY_TYPES = {"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}
RESOURCE_POLICY_TYPES = {"AWS::KMS::Key": "KeyPolicy", "AWS::S3::BucketPolicy": "PolicyDocument"}

# Parameter name -> (template, resource) of the managed policy it is documented to receive.
EXTERNAL_POLICIES = {
    "SinkWritePolicyArn": ("sink-write-policy", "SinkWritePolicy"),
    "SinkCheckPolicyArn": ("sink-write-policy", "SinkCheckPolicy"),
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(node: Any) -> Iterator[dict[str, Any]]:
    """Statements of a policy document, looking through Fn::If branches."""
    if isinstance(node, dict):
        if "Fn::If" in node:
            _, when_true, when_false = node["Fn::If"]
            yield from statements(when_true)
            yield from statements(when_false)
        elif "Effect" in node:
            yield node
    elif isinstance(node, list):
        for item in node:
            yield from statements(item)


def template(stem: str) -> dict[str, Any]:
    return load(TEMPLATE_DIR / f"{stem}.yaml")


def policy_documents(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The identity policy documents written in an IAM resource (not the trust policy)."""
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Role":
        for policy in props.get("Policies", []):
            yield policy["PolicyDocument"]
    else:
        yield props["PolicyDocument"]


def iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every identity-policy statement of every template."""
    for path in TEMPLATES:
        for name, resource in load(path)["Resources"].items():
            if resource["Type"] in IAM_POLICY_TYPES:
                for document in policy_documents(resource):
                    for statement in statements(document["Statement"]):
                        yield f"{path.name}:{name}", statement


def resource_policy_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, statement) for every key-policy and bucket-policy statement."""
    for path in TEMPLATES:
        for name, resource in load(path)["Resources"].items():
            key = RESOURCE_POLICY_TYPES.get(resource["Type"])
            if key is not None:
                for statement in statements(resource["Properties"][key]["Statement"]):
                    yield f"{path.name}:{name}", statement


def trust_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in TEMPLATES:
        for name, resource in load(path)["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role":
                document = resource["Properties"]["AssumeRolePolicyDocument"]
                for statement in statements(document["Statement"]):
                    yield f"{path.name}:{name}", statement


@dataclass(frozen=True)
class Grant:
    """One action a role is allowed, on one resource expression, under one condition."""

    action: str
    resource: Any
    condition: Any
    sid: str | None


def _managed_policy_statements(template_body: dict[str, Any], reference: Any) -> Iterator[dict[str, Any]]:
    if isinstance(reference, dict) and "Ref" in reference:
        name = reference["Ref"]
        resources = template_body["Resources"]
        if name in resources:
            for document in policy_documents(resources[name]):
                yield from statements(document["Statement"])
            return
        if name in EXTERNAL_POLICIES:
            stem, policy = EXTERNAL_POLICIES[name]
            for document in policy_documents(template(stem)["Resources"][policy]):
                yield from statements(document["Statement"])
            return
    raise AssertionError(f"managed policy {reference!r} cannot be resolved to a template of deploy/")


def role_statements(stem: str, role: str) -> list[dict[str, Any]]:
    """Every Allow/Deny statement that applies to ``role`` (inline and attached managed policies)."""
    body = template(stem)
    resource = body["Resources"][role]
    found = [s for document in policy_documents(resource) for s in statements(document["Statement"])]
    for reference in _policy_references(resource["Properties"].get("ManagedPolicyArns", [])):
        found.extend(_managed_policy_statements(body, reference))
    return found


def _policy_references(node: Any) -> Iterator[Any]:
    """The managed-policy references of ``ManagedPolicyArns``, through both Fn::If branches."""
    if isinstance(node, list):
        for item in node:
            yield from _policy_references(item)
    elif isinstance(node, dict) and "Fn::If" in node:
        _, when_true, when_false = node["Fn::If"]
        yield from _policy_references(when_true)
        yield from _policy_references(when_false)
    elif node != {"Ref": "AWS::NoValue"}:
        yield node


def role_grants(stem: str, role: str) -> list[Grant]:
    grants = []
    for statement in role_statements(stem, role):
        assert statement["Effect"] == "Allow", f"{stem}:{role}: unexpected {statement['Effect']}"
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                grants.append(Grant(action, resource, statement.get("Condition"), statement.get("Sid")))
    return grants


def role_actions(stem: str, role: str) -> set[str]:
    return {grant.action for grant in role_grants(stem, role)}


def roles() -> Iterator[tuple[str, str]]:
    """(template stem, role logical id) of every role in deploy/."""
    for path in TEMPLATES:
        for name, resource in load(path)["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role":
                yield Path(path).stem, name

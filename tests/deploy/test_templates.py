"""Every template passes cfn-lint, and no IAM policy grants more than its component needs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.templates import TEMPLATES, load

# Actions AWS does not let a policy scope to a resource; a "*" resource is the only option.
UNSCOPABLE_ACTIONS = {"timestream:DescribeEndpoints", "cloudwatch:PutMetricData"}
IAM_POLICY_TYPES = {"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}


def test_there_are_templates_for_every_component() -> None:
    names = {path.stem for path in TEMPLATES}
    assert {
        "kinesis-stream",
        "checkpoint-table",
        "timestream",
        "firehose",
        "msk-serverless",
        "msk-iam-roles",
        "dead-letter-bucket",
        "iam-roles",
        "lambda-consumer",
        "dashboard",
    } <= names


def test_cfn_lint_passes_on_every_template() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), *map(str, TEMPLATES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _statements(node: Any) -> Iterator[dict[str, Any]]:
    """Statements of a policy document, looking through Fn::If branches."""
    if isinstance(node, dict):
        if "Fn::If" in node:
            _, when_true, when_false = node["Fn::If"]
            yield from _statements(when_true)
            yield from _statements(when_false)
        elif "Effect" in node:
            yield node
    elif isinstance(node, list):
        for item in node:
            yield from _statements(item)


def _policy_documents(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Role":
        for policy in props.get("Policies", []):
            yield policy["PolicyDocument"]
    else:
        yield props["PolicyDocument"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _iam_statements() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in TEMPLATES:
        for name, resource in load(path)["Resources"].items():
            if resource["Type"] in IAM_POLICY_TYPES:
                for document in _policy_documents(resource):
                    for statement in _statements(document["Statement"]):
                        yield f"{path.name}:{name}", statement


def test_iam_policies_exist_to_be_checked() -> None:
    assert sum(1 for _ in _iam_statements()) >= 20


@pytest.mark.parametrize("where,statement", list(_iam_statements()), ids=lambda v: str(v)[:60])
def test_no_wildcard_actions_or_resources_where_scoping_is_possible(
    where: str, statement: dict[str, Any]
) -> None:
    actions = _as_list(statement["Action"])
    for action in actions:
        assert isinstance(action, str) and "*" not in action, f"{where}: wildcard action {action!r}"
    resources = _as_list(statement["Resource"])
    if "*" in resources:
        assert set(actions) <= UNSCOPABLE_ACTIONS, f"{where}: '*' resource for {actions}"
        if "cloudwatch:PutMetricData" in actions:
            assert "cloudwatch:namespace" in str(statement.get("Condition")), where


def test_kms_use_by_stream_roles_is_bound_to_the_stream_encryption_context() -> None:
    path = next(p for p in TEMPLATES if p.stem == "iam-roles")
    resources = load(path)["Resources"]
    for role in ("ProducerRole", "ConsumerRole", "ReplayRole"):
        for document in _policy_documents(resources[role]):
            for statement in _statements(document["Statement"]):
                kms_actions = [a for a in _as_list(statement["Action"]) if a.startswith("kms:")]
                if kms_actions:
                    condition = str(statement.get("Condition"))
                    assert "kms:EncryptionContext:aws:kinesis:arn" in condition, role


def test_producer_cannot_read_and_consumer_cannot_write_the_stream() -> None:
    resources = load(next(p for p in TEMPLATES if p.stem == "iam-roles"))["Resources"]

    def actions(role: str) -> set[str]:
        return {
            action
            for document in _policy_documents(resources[role])
            for statement in _statements(document["Statement"])
            for action in _as_list(statement["Action"])
        }

    assert "kinesis:GetRecords" not in actions("ProducerRole")
    assert not {"kinesis:PutRecord", "kinesis:PutRecords"} & actions("ConsumerRole")
    assert "kms:Decrypt" not in actions("ProducerRole")


def test_checkpoint_table_is_protected() -> None:
    table = load(Path(next(p for p in TEMPLATES if p.stem == "checkpoint-table")))["Resources"]["LeaseTable"]
    props = table["Properties"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert props["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]


def test_stream_is_encrypted_with_its_own_rotating_key() -> None:
    resources = load(next(p for p in TEMPLATES if p.stem == "kinesis-stream"))["Resources"]
    encryption = resources["Stream"]["Properties"]["StreamEncryption"]
    assert encryption == {"EncryptionType": "KMS", "KeyId": {"Fn::GetAtt": ["StreamKey", "Arn"]}}
    assert resources["StreamKey"]["Properties"]["EnableKeyRotation"] is True


def test_dead_letter_bucket_is_versioned_private_and_kms_encrypted() -> None:
    resources = load(next(p for p in TEMPLATES if p.stem == "dead-letter-bucket"))["Resources"]
    props = resources["DeadLetterBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(props["PublicAccessBlockConfiguration"].values())
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

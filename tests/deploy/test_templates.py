"""Every template passes cfn-lint; no policy uses a wildcard or a negation where scoping is possible."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.policies import (
    as_list,
    iam_statements,
    resource_policy_statements,
    role_actions,
    template,
)
from tests.deploy.templates import TEMPLATES, load

# Actions IAM cannot scope to a resource (the Service Authorization Reference lists no resource
# type for them), so a "*" resource is the only option; each with the reason it is granted.
_EC2_DESCRIBE = (
    "Lambda's MSK event-source mapping looks up the cluster's VPC, subnets, security groups and "
    "its own network interfaces with the function's role (lambda-msk-consumer.yaml); EC2's "
    "Describe actions take no resource, and the interfaces it creates and deletes are scoped to "
    "the cluster's VPC"
)
UNSCOPABLE_ACTIONS = {
    "timestream:DescribeEndpoints": "endpoint discovery before every Timestream write",
    "ecr:GetAuthorizationToken": "Fargate's execution role logs in to ECR before pulling the image",
    "cloudwatch:PutMetricData": "scoped by its cloudwatch:namespace condition instead",
    "ec2:DescribeNetworkInterfaces": _EC2_DESCRIBE,
    "ec2:DescribeVpcs": _EC2_DESCRIBE,
    "ec2:DescribeSubnets": _EC2_DESCRIBE,
    "ec2:DescribeSecurityGroups": _EC2_DESCRIBE,
}
# A wildcard inside a resource must end a prefix at a delimiter ("bucket/*", "stream/bench-*"),
# so the prefix cannot match a sibling ("telemetry*" also matches "telemetryX").
DELIMITERS = "/-.:_"
NEGATED_KEYS = {"NotAction", "NotResource", "NotPrincipal"}


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
        "sink-write-policy",
        "iam-roles",
        "lambda-consumer",
        "lambda-msk-consumer",
        "dashboard",
        "kcl-daemon-role",
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


def test_iam_policies_exist_to_be_checked() -> None:
    assert sum(1 for _ in iam_statements()) >= 20


def _resource_text(resource: Any, parameters: dict[str, Any]) -> list[str]:
    """The resource as text with each ${Param} replaced by a marker saying whether the
    parameter's AllowedPattern forces it to end in a delimiter."""
    if isinstance(resource, str):
        return [resource]
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = resource["Fn::Sub"]
        text = text if isinstance(text, str) else text[0]

        def marker(match: re.Match[str]) -> str:
            name = match.group(1)
            pattern = parameters.get(name, {}).get("AllowedPattern")
            ends_in_delimiter = (
                bool(pattern)
                and re.fullmatch(pattern, "telemetry") is None
                and any(re.fullmatch(pattern, "telemetry" + d) for d in DELIMITERS)
            )
            return "{DELIMITED}/" if ends_in_delimiter else "{PARAM}"

        return [re.sub(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z]+)?\}", marker, text)]
    return []  # Ref / GetAtt of a whole ARN: no wildcard of ours


def _wildcard_problems(where: str, statement: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    problems = [f"{where}: {key}" for key in NEGATED_KEYS & set(statement)]
    if statement["Effect"] != "Allow":
        return problems
    actions = as_list(statement.get("Action", []))
    for action in actions:
        if not isinstance(action, str) or re.search(r"[*?]", action):
            problems.append(f"{where}: wildcard action {action!r}")
    for resource in as_list(statement.get("Resource", [])):
        if resource == "*":
            if not set(actions) <= set(UNSCOPABLE_ACTIONS):
                problems.append(f"{where}: '*' resource for {actions}")
            continue
        for text in _resource_text(resource, parameters):
            for match in re.finditer(r"[*?]", text):
                before = text[: match.start()]
                if match.group() == "?" or not before or before[-1] not in DELIMITERS:
                    problems.append(f"{where}: wildcard not after a delimiter in {resource!r}")
    return problems


def _all_statements() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for source in (iam_statements, resource_policy_statements):
        for where, statement in source():
            stem = where.split(".yaml")[0]
            found.append((where, statement, template(stem).get("Parameters", {})))
    return found


@pytest.mark.parametrize("where,statement,parameters", _all_statements(), ids=lambda v: str(v)[:60])
def test_no_wildcards_or_negations_where_scoping_is_possible(
    where: str, statement: dict[str, Any], parameters: dict[str, Any]
) -> None:
    if where.split(":")[1] in KEY_POLICY_HOLDERS:
        # A key policy's Resource "*" means "this key"; its actions are still checked.
        statement = {k: v for k, v in statement.items() if k != "Resource"}
    assert not _wildcard_problems(where, statement, parameters)


KEY_POLICY_HOLDERS = {"StreamKey", "DeadLetterKey", "ArchiveKey"}


@pytest.mark.parametrize(
    "statement,problem",
    [
        (
            {"Effect": "Allow", "Action": "kinesis:Get*", "Resource": "arn:aws:kinesis:r:1:stream/s"},
            "wildcard action",
        ),
        (
            {"Effect": "Allow", "Action": "kinesis:GetRecord?", "Resource": "arn:aws:kinesis:r:1:stream/s"},
            "wildcard action",
        ),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, "NotAction"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::b/x"}, "NotResource"),
        (
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b*"},
            "not after a delimiter",
        ),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "'*' resource"),
        (
            {
                "Effect": "Allow",
                "Action": "kafka-cluster:ReadData",
                "Resource": {"Fn::Sub": "arn:aws:kafka:r:1:topic/c/u/telemetry*"},
            },
            "not after a delimiter",
        ),
        (
            {
                "Effect": "Allow",
                "Action": "kafka-cluster:ReadData",
                "Resource": {"Fn::Sub": "arn:aws:kafka:r:1:topic/c/u/${Loose}*"},
            },
            "not after a delimiter",
        ),
    ],
)
def test_the_wildcard_check_catches_more_than_a_literal_star(statement: dict[str, Any], problem: str) -> None:
    parameters = {"Loose": {"Type": "String", "AllowedPattern": "[a-z]+"}}
    problems = _wildcard_problems("probe", statement, parameters)
    assert any(problem in text for text in problems), problems


def test_delimited_prefix_parameters_pass_the_wildcard_check() -> None:
    parameters = {"Prefix": {"Type": "String", "AllowedPattern": "[a-zA-Z0-9_.-]*[_.-]"}}
    statement = {
        "Effect": "Allow",
        "Action": "kafka-cluster:ReadData",
        "Resource": {"Fn::Sub": "arn:aws:kafka:r:1:topic/c/u/${Prefix}*"},
    }
    assert _wildcard_problems("probe", statement, parameters) == []


def test_producer_cannot_read_and_consumer_cannot_write_the_stream() -> None:
    producer = role_actions("iam-roles", "ProducerRole")
    consumer = role_actions("iam-roles", "ConsumerRole")
    assert "kinesis:GetRecords" not in producer
    assert not {"kinesis:PutRecord", "kinesis:PutRecords"} & consumer
    assert "kms:Decrypt" not in producer


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

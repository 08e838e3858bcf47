"""The AWS Batch template for planned replays deploys into moto's CloudFormation."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from tests.deploy.templates import TEMPLATE_DIR

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's account id
REGION = "us-east-1"


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def test_replay_batch_stack_deploys_queue_job_definition_table_and_role(moto_endpoint: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    ec2 = _client("ec2", moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"replay-{suffix}", Description="replay", VpcId=vpc)[
        "GroupId"
    ]
    # moto needs the compute environment's service role to exist and names its service-linked
    # role differently from AWS, so the test passes a role; on AWS the parameter stays empty.
    service_role = _client("iam", moto_endpoint).create_role(
        RoleName=f"batch-service-{suffix}",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]["Arn"]
    cfn = _client("cloudformation", moto_endpoint)
    stack = f"shardline-replay-batch-{suffix}"
    cfn.create_stack(
        StackName=stack,
        TemplateBody=(TEMPLATE_DIR / "replay-batch.yaml").read_text(),
        Parameters=[
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in {
                "JobName": f"backfill-{suffix}",
                "CheckpointTable": "replay",
                "ContainerImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shardline:test",
                "ImageRepositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/shardline",
                "ManifestBucketArn": f"arn:aws:s3:::jobs-{suffix}",
                "ManifestPrefix": "manifests/",
                "ArchiveBucketArn": f"arn:aws:s3:::archive-{suffix}",
                "ArchivePrefix": "2024/",
                "SinkTableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/devices",
                "DeadLetterBucketArn": f"arn:aws:s3:::dead-letters-{suffix}",
                "DeadLetterKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.uuid4()}",
                "Subnets": subnet,
                "SecurityGroups": group,
                "BatchServiceRoleArn": service_role,
            }.items()
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    description = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert description["StackStatus"] == "CREATE_COMPLETE", description.get("StackStatusReason")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in description["Outputs"]}

    table = _client("dynamodb", moto_endpoint).describe_table(TableName=f"replay-replay-backfill-{suffix}")[
        "Table"
    ]
    assert table["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    assert outputs["CheckpointTableName"] == f"replay-replay-backfill-{suffix}"

    batch = _client("batch", moto_endpoint)
    (definition,) = batch.describe_job_definitions(jobDefinitions=[outputs["JobDefinitionArn"]])[
        "jobDefinitions"
    ]
    assert definition["retryStrategy"]["attempts"] == 3
    assert definition["parameters"] == {"manifest": f"s3://jobs-{suffix}/manifests/backfill-{suffix}.json"}
    command = definition["containerProperties"]["command"]
    assert command[:4] == ["replay", "run", "--manifest", "Ref::manifest"]
    assert definition["containerProperties"]["jobRoleArn"] == outputs["ReplayJobRoleArn"]
    queues = batch.describe_job_queues(jobQueues=[outputs["JobQueueArn"]])["jobQueues"]
    assert [queue["state"] for queue in queues] == ["ENABLED"]
    # the stream, archive and dead-letter key policies admit roles under /shardline/ only
    role = _client("iam", moto_endpoint).get_role(RoleName=outputs["ReplayJobRoleArn"].rsplit("/", 1)[1])
    assert role["Role"]["Path"] == "/shardline/"
    assert outputs["ReplayJobRoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/shardline/")

"""deploy/cloudformation/bench-batch.yaml in moto's CloudFormation: the array-job pieces exist.

moto creates the Batch compute environment, job queue and job definition and the results
bucket; what moto does not model (Fargate placement, the bucket policy) is checked in the
template itself (tests/deploy lints it with cfn-lint and checkov).
"""

from __future__ import annotations

import contextlib
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


def test_bench_batch_template_deploys_queue_job_definition_and_results_bucket(moto_endpoint: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    ec2 = _client("ec2", moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"bench-{suffix}", Description="bench", VpcId=vpc)["GroupId"]
    iam = _client("iam", moto_endpoint)
    # what the account already holds: Batch's service-linked role (the template names it)
    trust = '{"Version": "2012-10-17", "Statement": []}'
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(
            RoleName="AWSServiceRoleForBatch",
            Path="/aws-service-role/batch.amazonaws.com/",
            AssumeRolePolicyDocument=trust,
        )
    cfn = _client("cloudformation", moto_endpoint)
    bucket = f"bench-results-{suffix}"
    bench_role = f"arn:aws:iam::{ACCOUNT}:role/shardline/bench-{suffix}"
    name = f"shardline-bench-batch-{suffix}"
    cfn.create_stack(
        StackName=name,
        TemplateBody=(TEMPLATE_DIR / "bench-batch.yaml").read_text(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {
                "BenchRoleArn": bench_role,
                "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole",
                "Image": "example.invalid/shardline-bench:1",
                "Subnets": subnet,
                "SecurityGroupIds": group,
                "ResultsBucketName": bucket,
            }.items()
        ],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    batch = _client("batch", moto_endpoint)
    queues = batch.describe_job_queues(jobQueues=[outputs["JobQueueArn"]])["jobQueues"]
    assert queues and queues[0]["state"] == "ENABLED"
    definitions = batch.describe_job_definitions(jobDefinitions=[outputs["WorkerJobDefinitionArn"]])[
        "jobDefinitions"
    ]
    container = definitions[0]["containerProperties"]
    assert container["jobRoleArn"] == bench_role  # the job runs as the bench role, no new IAM
    command = container["command"]
    assert command[:2] == ["stream-bench", "run"]
    assert command[command.index("--worker-id") + 1] == "aws-batch"
    assert f"s3://{bucket}/runs/Ref::run/" in command
    _client("s3", moto_endpoint).head_bucket(Bucket=bucket)

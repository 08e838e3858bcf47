"""Every role allows exactly the AWS API calls its component's code makes, on the right resources.

The calls are read from the code (tests/deploy/code_calls.py) and compared with the templates
both ways: a call the role does not allow would fail in production; an action the role allows
that no code calls is an over-grant.  The few actions that are not calls of our code are listed
with the reason they are needed (or deliberately not granted).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deploy.code_calls import (
    ROOT,
    ApiCall,
    closure,
    component_calls,
    module_calls,
    module_path,
    package_modules,
    source_calls,
)
from tests.deploy.policies import (
    Grant,
    as_list,
    policy_documents,
    role_actions,
    role_grants,
    roles,
    statements,
    template,
    trust_statements,
)

SINK_MODULES = frozenset(package_modules("consumers.sinks"))  # loaded by name from sink/dead-letter URIs
# The local emulators and the bench's local gateway talk to 127.0.0.1 only.
LOCAL_STACK = frozenset(package_modules("shardline.local") | package_modules("benchmarks.gateway"))

# Actions a call needs besides its own (the service calls KMS on the caller's behalf, or the
# SDK discovers an endpoint first).
DEPENDENT_ACTIONS = {
    "kinesis:PutRecords": {"kms:GenerateDataKey"},
    "kinesis:GetRecords": {"kms:Decrypt"},
    "kinesis:SubscribeToShard": {"kms:Decrypt"},
    "s3:PutObject": {"kms:GenerateDataKey"},
    "s3:GetObject": {"kms:Decrypt"},
}
ENDPOINT_DISCOVERY = {"timestream:WriteRecords": {"timestream:DescribeEndpoints"}}


@dataclass(frozen=True)
class Component:
    """The code a role runs: entry modules plus plug-ins, minus modules it imports but never runs."""

    entries: frozenset[str]
    # module -> why the component imports it but never makes its calls
    never_runs: dict[str, str] = field(default_factory=dict)
    # (module, action) -> why the component runs the module but never that call of it
    never_calls: dict[tuple[str, str], str] = field(default_factory=dict)
    # action -> why the code may call it but the deployed role must not allow it
    not_granted: dict[str, str] = field(default_factory=dict)
    # action -> why the role needs it although our code does not call it
    platform: dict[str, str] = field(default_factory=dict)
    encrypted: bool = True  # its streams and buckets are SSE-KMS

    def modules(self) -> set[str]:
        return closure(set(self.entries)) - LOCAL_STACK - set(self.never_runs)

    def calls(self) -> set[ApiCall]:
        return {
            call
            for call in component_calls(self.modules())
            if (call.module, call.action) not in self.never_calls
        }

    def code_actions(self) -> set[str]:
        actions = {call.action for call in self.calls()}
        for action in list(actions):
            actions |= ENDPOINT_DISCOVERY.get(action, set())
            if self.encrypted:
                actions |= DEPENDENT_ACTIONS.get(action, set())
        return actions

    def expected_actions(self) -> set[str]:
        return (self.code_actions() | set(self.platform)) - set(self.not_granted)


_CREATE_TABLE = (
    "called only when the lease table is missing (DescribeTable first); deployments create it "
    "with checkpoint-table.yaml (deletion protection, point-in-time recovery), so the role never "
    "creates tables"
)
_BENCH_RESULTS = (
    "partial results of a multi-machine run (benchmarks.merge); the results bucket's own policy "
    "in bench-batch.yaml admits the bench role to its runs/ prefix, so the role grants no S3"
)
_ESM = "Lambda's event-source mapping reads the stream with the function's role"

COMPONENTS = {
    ("iam-roles", "ProducerRole"): Component(frozenset({"producers.kinesis", "producers.cli"})),
    ("iam-roles", "ConsumerRole"): Component(
        frozenset({"consumers.cli", "consumers.tail.cli"}) | SINK_MODULES,
        not_granted={
            "dynamodb:CreateTable": _CREATE_TABLE,
            "dynamodb:UpdateContinuousBackups": _CREATE_TABLE,
        },
    ),
    ("iam-roles", "ReplayRole"): Component(
        frozenset({"consumers.replay.cli"}) | SINK_MODULES,
        never_runs={
            "consumers.kinesis.efo": "imported with the consumers.kinesis package; replay reads by polling",
            "consumers.checkpoint.dynamodb": "imported with consumers.kinesis; replay checkpoints in SQLite",
        },
    ),
    ("iam-roles", "BenchRole"): Component(
        frozenset({"benchmarks.cli"}) | package_modules("benchmarks.peers"),
        never_runs={"consumers.checkpoint.dynamodb": "bench readers keep their positions in memory"},
        not_granted=dict.fromkeys(("s3:PutObject", "s3:GetObject", "s3:ListBucket"), _BENCH_RESULTS),
        encrypted=False,  # the bench creates its own streams, unencrypted
    ),
    ("lambda-consumer", "FunctionRole"): Component(
        frozenset({"consumers.adapters.lambda_handler"}) | SINK_MODULES,
        platform={
            "kinesis:GetRecords": _ESM,
            "kinesis:GetShardIterator": _ESM,
            "kinesis:DescribeStream": _ESM,
            "kinesis:DescribeStreamSummary": _ESM,
            "kinesis:ListShards": _ESM,
            "kms:Decrypt": _ESM + " (SSE-KMS stream)",
            "sqs:SendMessage": "the mapping's on-failure destination is sent with the function's role",
            "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
            "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
        },
    ),
}

_MSK_ESM = "Lambda's MSK event-source mapping finds the cluster and its brokers with the function's role"
_MSK_ENI = (
    "Lambda's MSK event-source mapping polls from network interfaces it manages in the cluster's "
    "VPC with the function's role"
)
COMPONENTS[("lambda-msk-consumer", "FunctionRole")] = Component(
    # The handler is the Kinesis one; the mapping's pollers read Kafka with the role
    # (their kafka-cluster grants: test_lambda_msk_role_grants_what_lambdas_pollers_need).
    frozenset({"consumers.adapters.lambda_handler"}) | SINK_MODULES,
    never_calls={
        ("shardline.shardmath", "kinesis:ListShards"): "imported for the hash-key math of KPL "
        "de-aggregation (shardline.aggregation); the handler lists no shards",
    },
    platform={
        "kafka:DescribeClusterV2": _MSK_ESM,
        "kafka:GetBootstrapBrokers": _MSK_ESM,
        **dict.fromkeys(("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"), _MSK_ENI),
        **dict.fromkeys(
            (
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ),
            _MSK_ENI,
        ),
        "sqs:SendMessage": "the mapping's on-failure destination is sent with the function's role",
        "logs:CreateLogStream": "the Lambda runtime writes the function's logs",
        "logs:PutLogEvents": "the Lambda runtime writes the function's logs",
    },
)

COMPONENTS[("replay-batch", "ReplayJobRole")] = Component(
    # `shardline replay run --manifest M` on AWS Batch: one slice, its units' readers, the sinks.
    frozenset({"consumers.replay.slices", "consumers.replay.manifest"}) | SINK_MODULES,
    never_runs={
        "consumers.kinesis.efo": "imported with the consumers.kinesis package; replay reads by polling",
        "consumers.replay.plan": "a slice imports only kafka_source_client (a client config, no AWS "
        "call); the planner's listing and the manifest upload run before the job, by `replay plan`",
        "consumers.preflight": "imported with consumers.cli (a slice parses its kafka:// source with "
        "it); `replay run` makes no start-up check",
    },
    never_calls={
        ("consumers.replay.ranges", "s3:ListBucket"): "S3ArchiveReader.partitions lists the archive; "
        "a slice reads the objects its manifest names",
    },
    not_granted={
        "dynamodb:CreateTable": "the stack creates the job's checkpoint table (no ?create_table=true)",
        "dynamodb:UpdateContinuousBackups": "the stack creates the job's checkpoint table with PITR",
        **dict.fromkeys(
            ("firehose:PutRecordBatch", "timestream:WriteRecords", "timestream:DescribeEndpoints"),
            "replay-batch.yaml runs jobs whose sink is DynamoDB (its SinkTableArn)",
        ),
    },
)

COMPONENTS[("replay-batch", "ReplayPlannerRole")] = Component(
    # `shardline replay plan` (lists the source, writes the manifest) and `shardline replay
    # status` (reads the manifest, scans the job's table).
    frozenset({"consumers.replay.plan", "consumers.replay.status"}),
    never_runs={
        "consumers.kinesis.polling": "imported with consumers.kinesis (for reader_client); the planner "
        "makes its own GetShardIterator/GetRecords calls (consumers.replay.plan)",
        "consumers.kinesis.efo": "imported with the consumers.kinesis package; the planner never subscribes",
        "consumers.checkpoint.dynamodb": "imported for table_name_for (a name, no call); status scans "
        "the job's table through consumers.replay.ledger",
        "consumers.preflight": "imported with consumers.cli (plan parses a kafka:// source with it); "
        "plan and status make no start-up check",
        "consumers.sinks.deadletter": "imported with consumers.cli; plan only parses the sink and "
        "dead-letter URIs, it writes neither",
    },
    never_calls={
        ("consumers.replay.ledger", "dynamodb:GetItem"): "slice claims, read by `replay run`",
        ("consumers.replay.ledger", "dynamodb:PutItem"): "the job row, bound by the first `replay run`",
        ("consumers.replay.ledger", "dynamodb:UpdateItem"): "slice claims and counts, by `replay run`",
        (
            "consumers.replay.ledger",
            "dynamodb:BatchGetItem",
        ): "live slices for the rate caps, by `replay run`",
    },
    not_granted={
        "kms:GenerateDataKey": "the manifest bucket is encrypted with S3's own key (replay-batch.yaml "
        "names no key for it, and the job role reads the manifest without one)",
    },
)

# Roles that run no Shardline code; their grants are checked by the resource tests below.
SERVICE_ROLES = {
    ("firehose", "DeliveryRole"): "Firehose's own delivery into the archive bucket",
    ("replay-batch", "ExecutionRole"): "Fargate pulls the image and writes the job's logs with it",
}


# Roles whose code is an engine's, not Shardline's: compared with the engine's own published
# minimum permissions instead (test_kcl_daemon_role_grants_the_kcls_published_minimum).
ENGINE_ROLES = {("kcl-daemon-role", "KclDaemonRole"): "the Java KCL's MultiLangDaemon"}


def test_every_role_is_compared_with_code() -> None:
    kafka = {("msk-iam-roles", role) for role in KAFKA_COMPONENTS}
    assert set(roles()) == set(COMPONENTS) | set(SERVICE_ROLES) | kafka | set(ENGINE_ROLES)


_KCL_PERMISSIONS = json.loads((ROOT / "tests/fixtures/kcl/kcl_iam_permissions.json").read_text())
_TABLE = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ApplicationName}"
# Each resource of the KCL's table, as kcl-daemon-role.yaml names it.  The fan-out consumer is
# narrowed from the documented consumer/* to the one the KCL registers (named after the app).
_KCL_RESOURCES: dict[str, Any] = {
    "stream": {"Ref": "StreamArn"},
    "stream-consumer": {"Fn::Sub": "${StreamArn}/consumer/${ApplicationName}:*"},
    "lease-table": {"Fn::Sub": _TABLE},
    "lease-table-index": {"Fn::Sub": _TABLE + "/index/*"},
    "worker-metrics-table": {"Fn::Sub": _TABLE + "-WorkerMetricStats"},
    "coordinator-state-table": {"Fn::Sub": _TABLE + "-CoordinatorState"},
    "any": "*",
}


def test_kcl_daemon_role_grants_the_kcls_published_minimum() -> None:
    """The daemon's role grants exactly the KCL's documented minimum (vendored with its origin in
    tests/fixtures/kcl), each on the resource the table names, plus reading an encrypted stream;
    Shardline's processor in it only writes sinks (the attached sink policies)."""
    documented = {
        (action, json.dumps(_KCL_RESOURCES[row["resource"]], sort_keys=True))
        for row in _KCL_PERMISSIONS["rows"]
        for action in row["actions"]
    }
    role = template("kcl-daemon-role")["Resources"]["KclDaemonRole"]
    inline = [
        Grant(action, resource, statement.get("Condition"), statement.get("Sid"))
        for document in policy_documents(role)
        for statement in statements(document["Statement"])
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]
    own = [grant for grant in inline if grant.action != "kms:Decrypt"]
    granted = {(grant.action, json.dumps(grant.resource, sort_keys=True)) for grant in own}
    assert granted == documented
    metrics = [grant for grant in own if grant.action == "cloudwatch:PutMetricData"]
    assert [_condition(grant, "StringEquals", "cloudwatch:namespace") for grant in metrics] == [
        {"Ref": "ApplicationName"}
    ]
    assert [g.resource for g in inline if g.action == "kms:Decrypt"] == [{"Ref": "StreamKeyArn"}]
    assert role["Properties"]["ManagedPolicyArns"] == [
        {"Ref": "SinkWritePolicyArn"},
        {"Ref": "SinkCheckPolicyArn"},
    ]


@pytest.mark.parametrize("where", sorted(COMPONENTS), ids="/".join)
def test_role_allows_every_call_its_code_makes(where: tuple[str, str]) -> None:
    component = COMPONENTS[where]
    missing = component.expected_actions() - role_actions(*where)
    assert not missing, f"{where}: the code calls {sorted(missing)} but the role does not allow them"


@pytest.mark.parametrize("where", sorted(COMPONENTS), ids="/".join)
def test_role_allows_nothing_its_code_never_calls(where: tuple[str, str]) -> None:
    component = COMPONENTS[where]
    aws = {action for action in role_actions(*where) if not action.startswith("kafka-cluster:")}
    extra = aws - component.expected_actions()
    assert not extra, f"{where}: the role allows {sorted(extra)}, which no code of the component calls"


@pytest.mark.parametrize("where", sorted(COMPONENTS), ids="/".join)
def test_exceptions_are_not_stale(where: tuple[str, str]) -> None:
    """Each listed exception still describes the code: the module is imported and makes calls,
    the not-granted action is still called."""
    component = COMPONENTS[where]
    imported = closure(set(component.entries))
    for module in component.never_runs:
        assert module in imported, f"{where}: {module} is no longer imported; drop it from never_runs"
        assert component_calls({module}), f"{where}: {module} makes no AWS call; drop it from never_runs"
    for module, action in component.never_calls:
        assert module in component.modules(), f"{where}: {module} no longer runs; drop it from never_calls"
        assert action in {call.action for call in module_calls(module)}, (
            f"{where}: {module} no longer calls {action}"
        )
    assert set(component.not_granted) <= component.code_actions(), where


# The template parameter naming the resource a module's calls act on (the role's stream for
# Kinesis calls unless listed); for the start-up checks, per action, any of the resources checked.
MODULE_RESOURCES: dict[str, set[str]] = {
    "consumers.checkpoint.dynamodb": {"LeaseTableArn", "JobCheckpointTable"},
    "consumers.replay.ledger": {"JobCheckpointTable"},
    "consumers.replay.manifest": {"ManifestBucketArn"},
    "consumers.sinks.dynamodb": {"SinkTableArn"},
    "consumers.sinks.firehose": {"DeliveryStreamArn"},
    "consumers.sinks.timestream": {"TimestreamTableArn"},
    "consumers.sinks.deadletter": {"DeadLetterBucketArn"},
    "consumers.replay.ranges": {"ArchiveBucketArn"},
}
# A module whose calls act on different resources: (module, action) -> the template names.
MODULE_ACTION_RESOURCES: dict[tuple[str, str], set[str]] = {
    ("consumers.replay.plan", "s3:ListBucket"): {"ArchiveBucketArn"},  # the archive's objects
    ("consumers.replay.plan", "s3:PutObject"): {"ManifestBucketArn"},  # plan --out s3://...
}
PREFLIGHT_RESOURCES = {
    "dynamodb:DescribeTable": {"LeaseTableArn", "SinkTableArn"},
    "s3:ListBucket": {"DeadLetterBucketArn", "ArchiveBucketArn"},
    "firehose:DescribeDeliveryStream": {"DeliveryStreamArn"},
    "timestream:DescribeTable": {"TimestreamTableArn"},
    "kinesis:DescribeStreamSummary": {"StreamArn"},
}
STREAM_PARAMETER = {
    "BenchRole": "BenchStreamPrefix",
    "ReplayJobRole": "SourceStreamArn",
    "ReplayPlannerRole": "SourceStreamArn",
}


def _resources_of(where: tuple[str, str], call: ApiCall) -> set[str]:
    """The template names (parameters, resources) of what ``call`` may act on."""
    if call.module == "consumers.preflight":
        return PREFLIGHT_RESOURCES[call.action]
    if (call.module, call.action) in MODULE_ACTION_RESOURCES:
        return MODULE_ACTION_RESOURCES[(call.module, call.action)]
    if call.module in MODULE_RESOURCES:
        return MODULE_RESOURCES[call.module]
    assert call.service == "kinesis", f"{call}: say which resource {call.module} acts on"
    return {STREAM_PARAMETER.get(where[1], "StreamArn")}


@pytest.mark.parametrize("where", sorted(COMPONENTS), ids="/".join)
def test_each_call_is_granted_on_the_resource_it_acts_on(where: tuple[str, str]) -> None:
    component = COMPONENTS[where]
    grants = role_grants(*where)
    for call in component.calls():
        if call.action in component.not_granted:
            continue
        wanted = _resources_of(where, call)
        on = [str(g.resource) for g in grants if g.action == call.action]
        assert any(name in text for name in wanted for text in on), (
            f"{where}: {call.action} ({call.module}:{call.line}) is granted on {on}, not on {sorted(wanted)}"
        )


@pytest.mark.parametrize("where", sorted(COMPONENTS), ids="/".join)
def test_each_grant_is_used_on_the_resource_it_names(where: tuple[str, str]) -> None:
    """The reverse: an action the code calls on one resource and the role allows on another
    too is an over-grant that comparing actions alone cannot see (UpdateItem, called on the
    checkpoint table, allowed on the sink table as well)."""
    component = COMPONENTS[where]
    used: dict[str, set[str]] = {}
    for call in component.calls():
        if call.action not in component.not_granted:
            used.setdefault(call.action, set()).update(_resources_of(where, call))
    for grant in role_grants(*where):
        if grant.action in component.platform or grant.action.startswith("kms:"):
            continue  # the platform's reasons are listed; keys are checked by the KMS tests
        if grant.resource == "*":
            continue  # unscopable actions (test_templates.UNSCOPABLE_ACTIONS)
        if grant.action.startswith("kafka-cluster:"):
            continue  # MSK IAM grants: test_replay_batch_kafka_grants_match_the_code
        wanted = used.get(grant.action, set())
        assert any(name in str(grant.resource) for name in wanted), (
            f"{where}: {grant.action} is allowed on {grant.resource} ({grant.sid}), but the code "
            f"calls it only on {sorted(wanted)}"
        )


def test_the_scan_finds_the_calls_we_know_about() -> None:
    """The scanner itself: known call sites of each kind show up (attribute call, a method passed
    as a callable, a waiter, a client from a factory call)."""
    calls = component_calls(
        {
            "consumers.checkpoint.dynamodb",
            "benchmarks.run",
            "benchmarks.peers.kinesis",
            "consumers.replay.ranges",
        }
    )
    found = {(call.module, call.action) for call in calls}
    assert ("consumers.checkpoint.dynamodb", "dynamodb:Scan") in found  # partial(client.scan, ...)
    assert ("consumers.checkpoint.dynamodb", "dynamodb:DescribeTable") in found  # get_waiter("table_exists")
    assert ("benchmarks.run", "kinesis:DescribeStream") in found  # get_waiter("stream_exists")
    assert ("benchmarks.peers.kinesis", "kinesis:DeleteStream") in found  # _boto3(endpoint).delete_stream
    assert (
        "consumers.replay.ranges",
        "s3:ListBucket",
    ) in found  # list_objects_v2 is authorised by ListBucket


def _probe(source: str) -> set[str]:
    return {call.action for call in source_calls(ast.parse(source), "probe")}


def test_the_scan_fails_closed() -> None:
    """A new call shows up as its IAM action; a call the scan cannot attribute is an error,
    never silently left out of the comparison."""
    assert _probe('c = aiobotocore_client("dynamodb")\nawait client.delete_item(TableName="t")') == {
        "dynamodb:DeleteItem"
    }
    assert _probe('s3 = LazyClient("s3")\nawait self.client.head_object(Bucket="b", Key="k")') == {
        "s3:GetObject"
    }
    with pytest.raises(AssertionError, match="not named like a client"):
        _probe("await table.delete_item(Key={})")  # a client under another name
    with pytest.raises(AssertionError, match="ambiguous"):
        _probe("await client.describe_table(TableName='t')")  # DynamoDB or Timestream?
    # a client held under its service's name (the replay planner's plan_kinesis(kinesis, ...))
    assert _probe("await kinesis.get_shard_iterator(StreamName='s')") == {"kinesis:GetShardIterator"}
    assert _probe("await dynamodb.describe_table(TableName='t')") == {"dynamodb:DescribeTable"}
    with pytest.raises(AssertionError, match="literal name"):
        _probe("client.get_waiter(name)")
    assert _probe('probe = helper("firehose", "describe_delivery_stream", DeliveryStreamName="d")') == {
        "firehose:DescribeDeliveryStream"
    }
    assert _probe('await getattr(client, "describe_stream_summary")(StreamName="s")') == {
        "kinesis:DescribeStreamSummary"
    }
    with pytest.raises(AssertionError, match="computed operation name"):
        _probe("async def go(client, name):\n    await getattr(client, name)()")


# --- Kafka: kafka-cluster actions from the librdkafka features the code uses ------------------

# (evidence in the code, kafka-cluster actions it needs), after MSK's table of Kafka APIs per action.
# A client is built directly (``Producer(conf)``) or through ``KafkaClientConfig.new_client(Producer, ...)``.
KAFKA_EVIDENCE = (
    (
        re.compile(r"\bProducer\(|\bnew_client\(\s*Producer\b"),
        {"kafka-cluster:Connect", "kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"},
    ),
    (re.compile(r"['\"]enable\.idempotence['\"]"), {"kafka-cluster:WriteDataIdempotently"}),
    (
        re.compile(r"['\"]transactional\.id['\"]"),
        {"kafka-cluster:DescribeTransactionalId", "kafka-cluster:AlterTransactionalId"},
    ),
    (
        re.compile(r"\bConsumer\b"),
        {"kafka-cluster:Connect", "kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"},
    ),
    (re.compile(r"['\"]group\.id['\"]"), {"kafka-cluster:DescribeGroup"}),  # FindCoordinator, OffsetFetch
    (
        re.compile(r"\.(subscribe|commit|store_offsets)\("),
        {"kafka-cluster:AlterGroup"},
    ),  # Join/Sync/OffsetCommit
    (re.compile(r"\bAdminClient\(|\bnew_client\(\s*AdminClient\b"), {"kafka-cluster:Connect"}),
    (re.compile(r"\.list_topics\("), {"kafka-cluster:DescribeTopic"}),  # Metadata
    (re.compile(r"\.create_topics\("), {"kafka-cluster:CreateTopic"}),
    (re.compile(r"\.delete_topics\("), {"kafka-cluster:DeleteTopic"}),
)

KAFKA_COMPONENTS = {
    "KafkaProducerRole": {"producers.kafka", "producers._kafka_config"},
    "KafkaConsumerRole": {"consumers.kafka", "consumers._kafka_messages", "consumers.tail.kafka"},
    "KafkaReplayRole": {"consumers.replay.kafka_range", "consumers._kafka_replay"},
    "KafkaBenchRole": {
        "benchmarks.run_msk",
        "producers.kafka",
        "producers._kafka_config",
        "consumers.kafka",
        "consumers._kafka_messages",
    },
}


def _kafka_code_actions(modules: set[str]) -> set[str]:
    actions: set[str] = set()
    for module in modules:
        source = _code_only(module)
        for pattern, needed in KAFKA_EVIDENCE:
            if pattern.search(source):
                actions |= needed
    return actions


def _code_only(module: str) -> str:
    """The module's source without docstrings and comments (evidence must be code)."""
    tree = ast.parse(module_path(module).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        if docstring and isinstance(first.value.value, str):  # type: ignore[union-attr]
            body[0] = ast.Pass()  # type: ignore[index]
    return ast.unparse(tree)


@pytest.mark.parametrize("role", sorted(KAFKA_COMPONENTS))
def test_kafka_role_matches_the_client_features_its_code_uses(role: str) -> None:
    expected = _kafka_code_actions(KAFKA_COMPONENTS[role])
    granted = {
        action for action in role_actions("msk-iam-roles", role) if action.startswith("kafka-cluster:")
    }
    assert expected, role
    assert granted == expected, (
        f"{role}: missing {sorted(expected - granted)}, extra {sorted(granted - expected)}"
    )


# replay-batch.yaml's roles on a kafka:// plan: role -> (modules, kafka-cluster actions the
# code can use that the role must not have, with the reason).
REPLAY_BATCH_KAFKA: dict[str, tuple[set[str], dict[str, str]]] = {
    "ReplayJobRole": (
        {"consumers.replay.kafka_range", "consumers._kafka_replay"},
        {
            "kafka-cluster:AlterGroup": "a slice gives its readers no checkpoint group (its progress "
            "is in the job's table), so nothing is committed"
        },
    ),
    "ReplayPlannerRole": ({"consumers.replay.plan"}, {}),  # kafka_partitions: AdminClient metadata
}


@pytest.mark.parametrize("role", sorted(REPLAY_BATCH_KAFKA))
def test_replay_batch_kafka_grants_match_the_code(role: str) -> None:
    """`replay plan|run` take kafka:// sources: the job's roles get exactly the MSK IAM actions
    their code needs, on the plan's cluster, topic and the replay groups."""
    modules, not_granted = REPLAY_BATCH_KAFKA[role]
    expected = _kafka_code_actions(modules) - set(not_granted)
    assert set(not_granted) <= _kafka_code_actions(modules), role
    grants = [g for g in role_grants("replay-batch", role) if g.action.startswith("kafka-cluster:")]
    granted = {g.action for g in grants}
    assert granted == expected, (
        f"{role}: missing {sorted(expected - granted)}, extra {sorted(granted - expected)}"
    )
    for grant in grants:
        resource = str(grant.resource)
        kind = {"Connect": "cluster/", "DescribeGroup": "group/"}.get(grant.action.split(":")[1], "topic/")
        assert kind in resource and "${KafkaClusterName}/${KafkaClusterUuid}" in resource, grant
        if kind == "topic/":
            assert resource.endswith("/${KafkaTopic}'}"), grant
        if kind == "group/":
            assert resource.endswith("/shardline-replay-*'}"), grant
    for module in modules:
        group_ids = re.findall(
            r'"group\.id": (?:[^,\n]* or )?f?"([^"{]*)', _code_only(module).replace("'", '"')
        )
        assert all(group_id.startswith("shardline-replay-") for group_id in group_ids), (module, group_ids)


# What Lambda's MSK pollers do with the function's role (IAM authentication), after Lambda's
# "Configuring Amazon MSK event sources" (with-msk-configure) and MSK's table of Kafka APIs per
# action: action -> the kind of resource, as lambda-msk-consumer.yaml names it.
_MSK_CLUSTER = "cluster/${ClusterName}/${ClusterUuid}'}"
LAMBDA_MSK_POLLER = {
    "kafka-cluster:Connect": _MSK_CLUSTER,
    "kafka-cluster:DescribeClusterDynamicConfiguration": _MSK_CLUSTER,
    "kafka-cluster:DescribeTopic": "topic/${ClusterName}/${ClusterUuid}/${Topic}'}",
    "kafka-cluster:ReadData": "topic/${ClusterName}/${ClusterUuid}/${Topic}'}",
    "kafka-cluster:DescribeGroup": "group/${ClusterName}/${ClusterUuid}/${ConsumerGroupId}'}",
    "kafka-cluster:AlterGroup": "group/${ClusterName}/${ClusterUuid}/${ConsumerGroupId}'}",
}


def test_lambda_msk_role_grants_what_lambdas_pollers_need() -> None:
    """The pollers connect, read the one topic and use the one consumer group of the mapping:
    exactly those kafka-cluster actions, each on its own resource, named in full (no prefix,
    so topic telemetry grants nothing on telemetryX)."""
    grants = [
        g for g in role_grants("lambda-msk-consumer", "FunctionRole") if g.action.startswith("kafka-cluster:")
    ]
    assert {g.action for g in grants} == set(LAMBDA_MSK_POLLER)
    for grant in grants:
        resource = str(grant.resource)
        assert resource.endswith(LAMBDA_MSK_POLLER[grant.action]), grant
        assert "*" not in resource, grant
    mapping = template("lambda-msk-consumer")["Resources"]["EventSourceMapping"]["Properties"]
    assert mapping["Topics"] == [{"Ref": "Topic"}]
    assert mapping["AmazonManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": {"Ref": "ConsumerGroupId"}}
    assert str(mapping["EventSourceArn"]).endswith(_MSK_CLUSTER)


def test_lambda_msk_role_finds_the_cluster_and_manages_interfaces_in_its_vpc_only() -> None:
    grants = role_grants("lambda-msk-consumer", "FunctionRole")
    for grant in grants:
        if grant.action.startswith("kafka:"):
            assert str(grant.resource).endswith(_MSK_CLUSTER), grant
        if grant.action in {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"}:
            assert grant.resource != "*", grant
            assert _condition(grant, "ArnEquals", "ec2:Vpc") == {
                "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${VpcId}"
            }, grant
    assert {g.action for g in grants if g.action.startswith("kafka:")} == {
        "kafka:DescribeClusterV2",  # serves serverless clusters too, unlike DescribeCluster
        "kafka:GetBootstrapBrokers",
    }


def test_lambda_msk_mapping_can_report_partial_failures() -> None:
    """A Kafka mapping honours ReportBatchItemFailures, bisection and bounded retries only in
    provisioned mode; on demand it would count a partial batch response as a full success and
    the records it lists would be lost."""
    mapping = template("lambda-msk-consumer")["Resources"]["EventSourceMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert set(mapping["ProvisionedPollerConfig"]) == {"MinimumPollers", "MaximumPollers"}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] >= 0  # -1 retries forever and stalls the partition
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Ref": "FailureQueueArn"}


def test_every_kafka_grant_is_checked_against_code() -> None:
    checked = {("msk-iam-roles", role) for role in KAFKA_COMPONENTS}
    checked |= {("replay-batch", role) for role in REPLAY_BATCH_KAFKA}
    checked |= {("lambda-msk-consumer", "FunctionRole")}  # Lambda's pollers, not our code
    for where in roles():
        if any(action.startswith("kafka-cluster:") for action in role_actions(*where)):
            assert where in checked, where


# Kafka roles whose component writes Shardline's sinks, and the Kinesis role of the same command.
KAFKA_SINK_WRITERS = {"KafkaConsumerRole": "ConsumerRole", "KafkaReplayRole": "ReplayRole"}


@pytest.mark.parametrize("role", sorted(KAFKA_SINK_WRITERS))
def test_kafka_consumer_and_replay_roles_can_check_and_write_the_sinks(role: str) -> None:
    """`shardline consume|replay kafka://...` looks up and writes the same sinks and dead letters
    as from a Kinesis source, so the Kafka role gets the same AWS actions as the Kinesis one
    from the sink policies, and no other AWS action."""
    aws = {
        action for action in role_actions("msk-iam-roles", role) if not action.startswith("kafka-cluster:")
    }
    policies = template("sink-write-policy")["Resources"]
    sink_actions = {
        action
        for name in ("SinkWritePolicy", "SinkCheckPolicy")
        for document in policy_documents(policies[name])
        for statement in statements(document["Statement"])
        for action in as_list(statement["Action"])
    }
    kinesis_role = role_actions("iam-roles", KAFKA_SINK_WRITERS[role])
    assert sink_actions and sink_actions <= kinesis_role, role
    assert aws == sink_actions, (
        f"{role}: missing {sorted(sink_actions - aws)}, extra {sorted(aws - sink_actions)}"
    )


def test_replay_groups_on_msk_have_a_role_matching_the_group_ids_the_code_uses() -> None:
    prefix = template("msk-iam-roles")["Parameters"]["ReplayGroupPrefix"]["Default"]
    group_grants = [g for g in role_grants("msk-iam-roles", "KafkaReplayRole") if g.action.endswith("Group")]
    assert {g.action for g in group_grants} == {"kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"}
    assert all(
        str(g.resource).endswith('/${ReplayGroupPrefix}*"]}') or "${ReplayGroupPrefix}*" in str(g.resource)
        for g in group_grants
    )
    for module in KAFKA_COMPONENTS["KafkaReplayRole"]:
        group_ids = re.findall(
            r'"group\.id": (?:[^,\n]* or )?f?"([^"{]*)', _code_only(module).replace("'", '"')
        )
        assert group_ids, module
        assert all(group_id.startswith(prefix) for group_id in group_ids), (module, group_ids)


def test_consumer_role_admits_the_group_ids_its_code_uses() -> None:
    """`consume` uses the deployment's group (``ConsumerGroup``); `tail` carries the fixed group
    id shardline-tail, looked up but never joined or committed: the role may describe it, and
    alter only the consumer's own group."""
    grants = role_grants("msk-iam-roles", "KafkaConsumerRole")
    described = [str(g.resource) for g in grants if g.action == "kafka-cluster:DescribeGroup"]
    altered = [str(g.resource) for g in grants if g.action == "kafka-cluster:AlterGroup"]
    assert altered and all(text.endswith("/${ConsumerGroup}'}") for text in altered), altered
    fixed = re.findall(r'"group\.id": "([^"{]+)"', _code_only("consumers.tail.kafka").replace("'", '"'))
    assert fixed == ["shardline-tail"], fixed
    for group_id in fixed:
        assert any(text.endswith(f"/{group_id}'}}") for text in described), (group_id, described)


@pytest.mark.parametrize(
    "stem,parameter,module",
    [
        ("iam-roles", "BenchStreamPrefix", "benchmarks/run.py"),
        ("iam-roles", "BenchStreamPrefix", "benchmarks/hotshards.py"),
        ("iam-roles", "BenchStreamPrefix", "benchmarks/peers/runner.py"),  # stream-bench peers --endpoint
        ("msk-iam-roles", "BenchTopicPrefix", "benchmarks/run_msk.py"),  # topics and groups
    ],
)
def test_bench_resources_are_named_with_the_role_prefix(stem: str, parameter: str, module: str) -> None:
    prefix = template(stem)["Parameters"][parameter]["Default"]
    # the literal start of every generated name (f"stream-bench-{uuid...}", f"x-{name}-{uuid...}")
    names = re.findall(r'f"([a-z-]+)\{[^"]*uuid', (ROOT / module).read_text())
    assert names and all(name.startswith(prefix) for name in names), (module, names)


# --- the findings, one by one -------------------------------------------------------------------


def _grants(stem: str, role: str, action: str) -> list[Grant]:
    return [grant for grant in role_grants(stem, role) if grant.action == action]


def _condition(grant: Grant, operator: str, key: str) -> Any:
    assert isinstance(grant.condition, dict), grant
    return grant.condition.get(operator, {}).get(key)


def test_replay_role_can_decrypt_the_sse_kms_archive_through_s3_only() -> None:
    grants = [
        g for g in _grants("iam-roles", "ReplayRole", "kms:Decrypt") if g.resource == {"Ref": "ArchiveKeyArn"}
    ]
    assert len(grants) == 1
    (grant,) = grants
    assert _condition(grant, "StringEquals", "kms:ViaService") == {
        "Fn::Sub": "s3.${AWS::Region}.amazonaws.com"
    }
    context = _condition(grant, "StringLike", "kms:EncryptionContext:aws:s3:arn")
    assert {"Ref": "ArchiveBucketArn"} in context


def test_roles_that_use_a_key_are_under_the_path_the_key_policies_admit() -> None:
    """The key policies of kinesis-stream, dead-letter-bucket and firehose let only roles under
    their RolePath use the keys; a role granted kms: actions elsewhere (replay-batch's job role
    was created under "/") is refused by the key policy at its first read or dead letter."""
    admitted = {template(stem)["Parameters"]["RolePath"]["Default"] for stem in KEY_TEMPLATES}
    assert len(admitted) == 1, admitted
    for stem, role in roles():
        if not any(grant.action.startswith("kms:") for grant in role_grants(stem, role)):
            continue
        body = template(stem)
        assert body["Resources"][role]["Properties"].get("Path") == {"Ref": "RolePath"}, (stem, role)
        assert {body["Parameters"]["RolePath"]["Default"]} == admitted, (stem, role)


def test_every_kms_grant_is_bound_to_a_service_and_an_encryption_context() -> None:
    for stem, role in roles():
        for grant in role_grants(stem, role):
            if grant.action.startswith("kms:"):
                text = str(grant.condition)
                assert "kms:ViaService" in text, (stem, role, grant)
                assert "kms:EncryptionContext:" in text, (stem, role, grant)


@pytest.mark.parametrize("stem", ["lambda-consumer", "lambda-msk-consumer"])
def test_lambda_consumer_role_can_write_sinks_and_dead_letters(stem: str) -> None:
    actions = role_actions(stem, "FunctionRole")
    assert {
        "s3:PutObject",
        "kms:GenerateDataKey",
        "dynamodb:BatchWriteItem",
        "firehose:PutRecordBatch",
        "timestream:WriteRecords",
    } <= actions


S3_OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}
S3_BUCKET_ACTIONS = {"s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"}


def test_s3_actions_name_the_resource_type_they_act_on() -> None:
    """Object actions on object ARNs (bucket/...), bucket actions on the bucket ARN; a grant on the
    wrong type is silently useless (AbortMultipartUpload on a bucket never matches)."""
    for stem, role in roles():
        for grant in role_grants(stem, role):
            resource = str(grant.resource)
            if grant.action in S3_OBJECT_ACTIONS:
                assert re.search(r"/[^']*\*", resource), (stem, role, grant.action, resource)
            elif grant.action in S3_BUCKET_ACTIONS:
                assert "/" not in resource.replace("}/", ""), (stem, role, grant.action, resource)
            else:
                assert not grant.action.startswith("s3:"), f"{stem}:{role}: classify {grant.action}"


def test_s3_grants_are_limited_to_buckets_of_this_account() -> None:
    for stem, role in (
        ("iam-roles", "ReplayRole"),
        ("lambda-consumer", "FunctionRole"),
        ("lambda-msk-consumer", "FunctionRole"),
    ):
        for grant in role_grants(stem, role):
            if grant.action.startswith("s3:"):
                assert _condition(grant, "StringEquals", "s3:ResourceAccount") == {"Ref": "AWS::AccountId"}, (
                    grant
                )


# --- keys, buckets, trust ---------------------------------------------------------------------

KEY_TEMPLATES = {
    "kinesis-stream": "StreamKey",
    "dead-letter-bucket": "DeadLetterKey",
    "firehose": "ArchiveKey",
}
CRYPTO_ACTIONS = re.compile(
    r"kms:(Encrypt|Decrypt|ReEncrypt|GenerateDataKey|Sign|Verify|GenerateMac|CreateGrant|\*)"
)


@pytest.mark.parametrize("stem", sorted(KEY_TEMPLATES))
def test_key_policy_separates_administration_from_use(stem: str) -> None:
    """No account-wide kms:* (which would let any IAM policy of the account use the key and make
    the kms:ViaService statements meaningless): a named admin without crypto rights, and use by
    Shardline's roles only, only through the service, only for the one resource."""
    body = template(stem)
    key = body["Resources"][KEY_TEMPLATES[stem]]["Properties"]["KeyPolicy"]
    statements = as_list(key["Statement"])
    for statement in statements:
        actions = as_list(statement["Action"])
        assert "kms:*" not in actions, statement.get("Sid")
        principal = statement["Principal"]["AWS"]
        if principal == {"Ref": "KeyAdminArn"}:
            assert not any(CRYPTO_ACTIONS.match(action) for action in actions), actions
            continue
        condition = statement["Condition"]
        assert "kms:ViaService" in condition["StringEquals"], statement["Sid"]
        assert "aws:PrincipalArn" in condition["ArnLike"], statement["Sid"]
        assert any(k.startswith("kms:EncryptionContext:") for k in condition["StringLike"]), statement["Sid"]
        assert all(CRYPTO_ACTIONS.match(action) for action in actions), actions
    assert "KeyAdminArn" in body["Parameters"]


BUCKETS = {"dead-letter-bucket": "DeadLetterBucket", "firehose": "ArchiveBucket"}


@pytest.mark.parametrize("stem", sorted(BUCKETS))
def test_bucket_refuses_requests_without_tls(stem: str) -> None:
    resources = template(stem)["Resources"]
    policies = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    assert len(policies) == 1
    (policy,) = policies
    assert policy["Properties"]["Bucket"] == {"Ref": BUCKETS[stem]}
    deny = [s for s in as_list(policy["Properties"]["PolicyDocument"]["Statement"]) if s["Effect"] == "Deny"]
    assert any(
        s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and len(as_list(s["Resource"])) == 2  # the bucket and its objects
        for s in deny
    )


@pytest.mark.parametrize("stem", sorted(BUCKETS))
def test_bucket_is_versioned_and_expires_old_versions_and_uploads(stem: str) -> None:
    props = template(stem)["Resources"][BUCKETS[stem]]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any("ExpirationInDays" in rule for rule in rules)
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules)


TRUST_EXCEPTIONS = {
    "firehose.amazonaws.com": "sts:ExternalId",  # Firehose's documented binding to the account
}


def _trust_conditions(condition: Any) -> list[Any]:
    """The condition blocks a trust statement can end up with, one per Fn::If outcome; the
    NoValue outcome is allowed only for EC2 (RunsOnEc2), which sets no source account."""
    if isinstance(condition, dict) and "Fn::If" in condition:
        name, when_true, when_false = condition["Fn::If"]
        if when_true == {"Ref": "AWS::NoValue"}:
            assert name == "RunsOnEc2", name
            return _trust_conditions(when_false)
        return _trust_conditions(when_true) + _trust_conditions(when_false)
    return [condition]


def test_trust_policies_name_the_calling_account() -> None:
    for where, statement in trust_statements():
        service = statement["Principal"]["Service"]
        if service == "ec2.amazonaws.com":
            # a statement of EC2's own (replay-batch's runners): EC2 names neither the account
            # nor the instance; the statement exists only when the stack is told EC2 runs it
            assert "Condition" not in statement, where
            continue
        key = (
            TRUST_EXCEPTIONS.get(service, "aws:SourceAccount")
            if isinstance(service, str)
            else "aws:SourceAccount"
        )
        assert statement.get("Condition") is not None, where
        for condition in _trust_conditions(statement["Condition"]):
            assert condition["StringEquals"][key] == {"Ref": "AWS::AccountId"}, where


_ECS_SOURCE_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:*"}


def test_ecs_task_roles_also_name_the_calling_service_arn() -> None:
    for where, statement in trust_statements():
        condition = statement.get("Condition")
        if isinstance(condition, dict) and "Fn::If" in condition:
            otherwise = condition["Fn::If"][2]
            if "Fn::If" in otherwise:  # ECS, or another service that names only the account
                assert otherwise["Fn::If"][0] == "RunsOnEcs", where
                ecs = otherwise["Fn::If"][1]
            else:  # the principal is EC2 or ECS
                ecs = otherwise
            assert ecs["ArnLike"]["aws:SourceArn"] == _ECS_SOURCE_ARN, where
        elif statement["Principal"]["Service"] == "ecs-tasks.amazonaws.com":
            assert condition["ArnLike"]["aws:SourceArn"] == _ECS_SOURCE_ARN, where


# --- every command the docs show runs under a role of deploy/ ---------------------------------

# `shardline COMMAND [ACTION]` -> the role(s) that run it; `local` runs the local stack, no AWS.
COMMAND_ROLES: dict[str, set[tuple[str, str]]] = {
    "produce": {("iam-roles", "ProducerRole"), ("msk-iam-roles", "KafkaProducerRole")},
    "consume": {("iam-roles", "ConsumerRole"), ("msk-iam-roles", "KafkaConsumerRole")},
    "tail": {("iam-roles", "ConsumerRole"), ("msk-iam-roles", "KafkaConsumerRole")},
    "replay": {("iam-roles", "ReplayRole"), ("msk-iam-roles", "KafkaReplayRole")},
    "replay plan": {("replay-batch", "ReplayPlannerRole")},
    "replay status": {("replay-batch", "ReplayPlannerRole")},
    "replay run": {("replay-batch", "ReplayJobRole")},
}
NO_AWS_COMMANDS = {"local": "starts the local emulators on 127.0.0.1", "import": "python's import"}
_DOCUMENTED_COMMAND = re.compile(r"\bshardline (?P<command>[a-z][a-z-]+)(?: (?P<action>plan|run|status)\b)?")


def test_every_documented_command_runs_under_a_role() -> None:
    documented = set()
    for doc in sorted(
        [*ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md", ROOT / "deploy" / "README.md"]
    ):
        for match in _DOCUMENTED_COMMAND.finditer(doc.read_text()):
            command, action = match["command"], match["action"]
            documented.add(f"{command} {action}" if command == "replay" and action else command)
    assert {"replay plan", "replay run", "replay status"} <= documented
    unknown = documented - set(COMMAND_ROLES) - set(NO_AWS_COMMANDS)
    assert not unknown, f"documented commands with no role in deploy/: {sorted(unknown)}"
    every_role = set(roles())
    for command, where in COMMAND_ROLES.items():
        assert where <= every_role, (command, where - every_role)


def test_replay_plan_and_status_have_a_role_and_the_slices_run_outside_batch() -> None:
    """`replay plan|status` run under the planner role; `replay run --workers N` outside Batch
    runs under the job role, which an ECS task may assume and, with
    OperatorServicePrincipal=ec2.amazonaws.com, an EC2 instance through its instance profile."""
    body = template("replay-batch")
    resources, outputs = body["Resources"], body["Outputs"]
    assert "ReplayPlannerRoleArn" in outputs
    job_trust = resources["ReplayJobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    services = {s["Principal"]["Service"] for s in statements(job_trust)}
    assert services == {"ecs-tasks.amazonaws.com", "ec2.amazonaws.com"}
    ec2 = [s for s in job_trust if isinstance(s, dict) and "Fn::If" in s]
    assert [s["Fn::If"][0] for s in ec2] == ["RunsOnEc2"]
    profiles = {
        name: resource["Properties"]["Roles"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::InstanceProfile"
    }
    assert sorted(map(str, profiles.values())) == sorted(
        [str([{"Ref": "ReplayJobRole"}]), str([{"Ref": "ReplayPlannerRole"}])]
    )
    assert all(resources[name]["Condition"] == "RunsOnEc2" for name in profiles)
    assert {f"{name}Arn" for name in profiles} <= set(outputs)

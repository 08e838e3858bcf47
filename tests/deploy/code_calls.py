"""The AWS API calls each Shardline component makes, read from its source code.

A component is the import closure of its entry modules inside the project's packages
(function-level imports included; the sink and dead-letter modules, which are loaded by
name from a URI, are added to every component that writes sinks).  In those modules every
``<client>.<operation>`` attribute, ``get_waiter("...")`` and ``get_paginator("...")`` is an
API call, where ``<operation>`` is the snake_case name botocore gives an operation of one of
:data:`SERVICES` and ``<client>`` is an expression whose last name is ``client`` / ``_client``
a call of a client factory, or a plain name that is one of the services (``kinesis``, ``s3``:
a client of that service).  Any other receiver of an operation-named attribute must be
listed in :data:`NOT_CLIENT_CALLS`, so a client held under a new name fails the comparison
instead of silently escaping it.  A call named by strings (a helper called with a literal
service and operation, as ``_aws_probe("dynamodb", "describe_table", ...)``, or
``getattr(client, "operation")``) counts too; ``getattr`` on a client with a computed name is
an error, because the scan cannot tell what it calls.

The IAM action of an operation is the service's IAM prefix plus the operation name, except
for the few operations authorised by another action (:data:`ACTION_EXCEPTIONS`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name
from botocore.exceptions import DataNotFoundError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shardline", "producers", "consumers", "benchmarks")

# botocore service name -> IAM service prefix.
SERVICES = {
    "kinesis": "kinesis",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "firehose": "firehose",
    "timestream-write": "timestream",
    "cloudwatch": "cloudwatch",
    "kms": "kms",
    "sqs": "sqs",
    "sts": "sts",
    "logs": "logs",
}

# Operations authorised by an IAM action of another name (AWS Service Authorization Reference).
ACTION_EXCEPTIONS = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
}

# Attributes named like an operation whose receiver is not an AWS client:
# (module, receiver source, attribute) -> what it is.
# (module, receiver source, attribute) -> what it is; module "*" matches every module.
NOT_CLIENT_CALLS = {
    ("*", "parts", "query"): "urllib's SplitResult.query (the URI parsers name it parts)",
    ("benchmarks.peers.kinesis", "producer", "put_record"): "Shardline's own KinesisProducer.put_record",
    ("shardline.kafka_config", "self", "verify"): "KafkaClientConfig.verify (a TLS setting)",
}

# Helpers that call an operation named by their arguments: (module, function) -> why that is
# covered (their callers pass literal service and operation names, which the scan reads).
STRING_DISPATCH = {
    ("consumers.preflight", "probe"): "_aws_probe(service, operation, ...) is always called with literals",
}

_CLIENT_RECEIVER = re.compile(r"(?:^|\.)_?client$")
_SERVICE_RECEIVER = re.compile(r"(?:^|\.)_?(?P<service>[a-z0-9]+)$")
_CLIENT_FACTORIES = {"_boto3", "boto3_client", "aiobotocore_client", "client", "create_client"}


@dataclass(frozen=True, order=True)
class ApiCall:
    """One API call site: the botocore service, the operation, and where the code makes it."""

    service: str
    operation: str
    module: str
    line: int

    @property
    def action(self) -> str:
        return ACTION_EXCEPTIONS.get(
            (self.service, self.operation), f"{SERVICES[self.service]}:{self.operation}"
        )


@cache
def _models() -> dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]]:
    """Per service: snake_case operation -> OperationName, waiter -> operation, paginator -> operation."""
    session = botocore.session.get_session()
    models = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        operations = {xform_name(name): name for name in model.operation_names}
        waiters: dict[str, str] = {}
        try:
            waiter_model = session.get_waiter_model(service)
        except DataNotFoundError:  # a service without waiters
            waiter_model = None
        if waiter_model is not None:
            for name in waiter_model.waiter_names:
                waiters[xform_name(name)] = waiter_model.get_waiter(name).operation
        paginators = {
            snake: name for snake, name in operations.items() if _has_paginator(session, service, name)
        }
        models[service] = (operations, waiters, paginators)
    return models


def _has_paginator(session: botocore.session.Session, service: str, operation: str) -> bool:
    try:
        session.get_paginator_model(service).get_paginator(operation)
    except (DataNotFoundError, ValueError):  # no paginators at all / none for this operation
        return False
    return True


def module_path(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _exists(module: str) -> bool:
    return module_path(module).is_file()


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(module_path(module).read_text(), filename=str(module_path(module)))


def _imports(module: str) -> set[str]:
    """First-party modules ``module`` imports anywhere (module level or inside functions)."""
    found: set[str] = set()
    package = module if module_path(module).name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(_tree(module)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES and _exists(name):
                found.add(name)
                # importing a.b.c runs a/__init__ and a/b/__init__ too
                parts = name.split(".")
                found.update(
                    ".".join(parts[:i]) for i in range(1, len(parts)) if _exists(".".join(parts[:i]))
                )
    return found


def package_modules(package: str) -> set[str]:
    directory = ROOT.joinpath(*package.split("."))
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in directory.rglob("*.py")
    }


def closure(entries: set[str]) -> set[str]:
    """The first-party modules reachable from ``entries`` by imports."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_imports(module) - seen)
    return seen


def _factory_services(tree: ast.Module) -> set[str]:
    """Services whose clients a module builds (string literals given to a client factory)."""
    services = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (name in _CLIENT_FACTORIES or name == "LazyClient") and node.args[0].value in SERVICES:
                services.add(str(node.args[0].value))
    return services


def _is_client(receiver: ast.expr) -> bool:
    if isinstance(receiver, ast.Call):
        func = receiver.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in _CLIENT_FACTORIES
    return bool(_CLIENT_RECEIVER.search(ast.unparse(receiver)))


def _resolve(candidates: list[str], local: set[str], what: str) -> str:
    narrowed = [service for service in candidates if service in local] or candidates
    if len(narrowed) != 1:
        raise AssertionError(
            f"{what}: ambiguous between services {narrowed}; build the client in this module"
        )
    return narrowed[0]


def module_calls(module: str) -> set[ApiCall]:
    """The API calls made by one module."""
    return source_calls(_tree(module), module)


def source_calls(tree: ast.Module, module: str) -> set[ApiCall]:
    """The API calls made by the code in ``tree`` (``module`` names it in messages and results)."""
    models = _models()
    by_operation: dict[str, list[str]] = {}
    for service, (operations, _, _) in models.items():
        for snake in operations:
            by_operation.setdefault(snake, []).append(service)
    local = _factory_services(tree)
    enclosing = _enclosing_functions(tree)
    calls: set[ApiCall] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls |= _named_by_strings(node, module, models, local, enclosing)
            continue
        if not isinstance(node, ast.Attribute):
            continue
        if node.attr in ("get_waiter", "get_paginator"):
            parent_call = _call_of(tree, node)
            if (
                parent_call is None
                or not parent_call.args
                or not isinstance(parent_call.args[0], ast.Constant)
            ):
                raise AssertionError(
                    f"{module}:{node.lineno}: {node.attr} needs a literal name to be checked"
                )
            name = str(parent_call.args[0].value)
            index = 1 if node.attr == "get_waiter" else 2
            candidates = [service for service, model in models.items() if name in model[index]]
            service = _resolve(candidates, local, f"{module}:{node.lineno} {node.attr}({name!r})")
            operation = models[service][index][name]
            calls.add(ApiCall(service, operation, module, node.lineno))
            continue
        if node.attr not in by_operation:
            continue
        receiver = ast.unparse(node.value)
        if (module, receiver, node.attr) in NOT_CLIENT_CALLS or (
            "*",
            receiver,
            node.attr,
        ) in NOT_CLIENT_CALLS:
            continue
        named = _SERVICE_RECEIVER.search(receiver)
        if named and named["service"] in by_operation[node.attr]:
            # a client held under its service's name: plan_kinesis(kinesis, ...), plan_s3(s3, ...)
            service = named["service"]
        elif not _is_client(node.value):
            raise AssertionError(
                f"{module}:{node.lineno}: {receiver}.{node.attr} looks like an AWS call on a receiver "
                "not named like a client; name the client `client` or list it in NOT_CLIENT_CALLS"
            )
        else:
            service = _resolve(by_operation[node.attr], local, f"{module}:{node.lineno} {node.attr}")
        calls.add(ApiCall(service, models[service][0][node.attr], module, node.lineno))
    return calls


def _enclosing_functions(tree: ast.Module) -> dict[int, str]:
    """id(node) -> name of the innermost function around it."""
    names: dict[int, str] = {}

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            names[id(child)] = inner
            visit(child, inner)

    visit(tree, "")
    return names


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _named_by_strings(
    node: ast.Call,
    module: str,
    models: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]],
    local: set[str],
    enclosing: dict[int, str],
) -> set[ApiCall]:
    """``helper("service", "operation", ...)`` and ``getattr(client, "operation")``."""
    func_name = getattr(node.func, "id", None)
    if func_name == "getattr" and len(node.args) >= 2 and _is_client(node.args[0]):
        name = _literal(node.args[1])
        if name is None and (module, enclosing.get(id(node), "")) in STRING_DISPATCH:
            return set()
        if name is None:
            raise AssertionError(
                f"{module}:{node.lineno}: getattr on a client with a computed operation name; "
                "pass the service and operation as string literals so the calls can be checked"
            )
        candidates = [service for service, model in models.items() if name in model[0]]
        service = _resolve(candidates, local, f"{module}:{node.lineno} getattr {name}")
        return {ApiCall(service, models[service][0][name], module, node.lineno)}
    if len(node.args) >= 2:
        service, operation = _literal(node.args[0]), _literal(node.args[1])
        if service in models and operation in models[service][0]:
            return {ApiCall(service, models[service][0][operation], module, node.lineno)}
    return set()


def _call_of(tree: ast.Module, attribute: ast.Attribute) -> ast.Call | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.func is attribute:
            return node
    return None


def component_calls(modules: set[str]) -> set[ApiCall]:
    return {call for module in sorted(modules) for call in module_calls(module)}

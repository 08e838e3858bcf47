"""The deploy commands the docs show name the parameters and outputs the templates really have.

A command that leaves out a parameter without a default fails before it creates anything
(CloudFormation: "Parameters: [...] must have values"); one that names a parameter the template
does not have fails the same way; a stack output looked up by a name the template does not
output reads as an empty string and the next command fails far from the cause.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.code_calls import ROOT
from tests.deploy.policies import template

DOCS = sorted([*ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md", ROOT / "deploy" / "README.md"])

_DEPLOY = re.compile(r"aws cloudformation deploy [^\n]*")
_TEMPLATE = re.compile(r"--template-file\s+\S*?([a-z0-9-]+)\.yaml")
_OVERRIDE = re.compile(r"(?<![\w.-])([A-Z][A-Za-z0-9]*)=")
_STACK = re.compile(r"--stack-name\s+(\S+)")
_OUTPUT_LOOKUP = re.compile(r"--stack-name\s+(\S+)[^\n]*?OutputKey=='(\w+)'")


def _commands(text: str) -> str:
    """The text with shell line continuations joined, so one command is one line."""
    return re.sub(r"\\\n\s*", " ", text)


def _deploys() -> list[tuple[str, str, str, set[str]]]:
    """(doc, stack, template stem, parameters given) for every deploy command in the docs."""
    found = []
    for doc in DOCS:
        for command in _DEPLOY.findall(_commands(doc.read_text())):
            stem = _TEMPLATE.search(command)
            stack = _STACK.search(command)
            assert stem and stack, f"{doc.name}: {command}"
            overrides = command.partition("--parameter-overrides")[2]
            found.append((doc.name, stack.group(1), stem.group(1), set(_OVERRIDE.findall(overrides))))
    return found


def test_the_docs_show_deploy_commands() -> None:
    assert len(_deploys()) >= 10


@pytest.mark.parametrize(
    "doc,stack,stem,given", _deploys(), ids=[f"{doc}:{stack}" for doc, stack, _, _ in _deploys()]
)
def test_deploy_command_gives_the_template_parameters(
    doc: str, stack: str, stem: str, given: set[str]
) -> None:
    parameters = template(stem)["Parameters"]
    unknown = given - set(parameters)
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    missing = required - given
    assert not unknown, f"{doc}: {stem}.yaml has no parameter {sorted(unknown)}"
    assert not missing, f"{doc}: deploying {stem}.yaml needs {sorted(missing)} (no default)"


def test_stack_outputs_the_docs_look_up_exist() -> None:
    stems = {(doc, stack): stem for doc, stack, stem, _ in _deploys()}
    lookups = 0
    for doc in DOCS:
        for stack, output in _OUTPUT_LOOKUP.findall(_commands(doc.read_text())):
            stem = stems.get((doc.name, stack))
            assert stem, f"{doc.name}: outputs of stack {stack}, which the doc does not deploy"
            assert output in template(stem)["Outputs"], f"{doc.name}: {stem}.yaml has no output {output}"
            lookups += 1
    assert lookups


def test_docs_name_outputs_their_templates_have() -> None:
    """Prose and parameter descriptions: "the X output of Y.yaml"."""
    sources = [*DOCS, *sorted(ROOT.joinpath("deploy", "cloudformation").glob("*.yaml"))]
    pattern = re.compile(r"`?([A-Z][A-Za-z]+)`? output of `?(?:[\w/]*/)?([a-z-]+)\.yaml")
    for source in sources:
        for output, stem in pattern.findall(re.sub(r"\s+", " ", Path(source).read_text())):
            assert output in template(stem)["Outputs"], f"{source.name}: {stem}.yaml has no output {output}"

"""Unit tests of the local stack's planning, state, environment, process control and installers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shardline.local import installers, processes, stack
from shardline.local.environment import endpoint_env_var, export_lines, stack_environment
from shardline.local.errors import LocalEmulatorError, PrerequisiteMissingError, ServerStartError
from shardline.local.processes import ServerHandle, is_running, launch, stop_pid, wait_ready
from shardline.local.stack import RecordedServer, StackState, parse_services


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SHARDLINE_CACHE_DIR", str(cache))
    monkeypatch.delenv("SHARDLINE_LOCAL_STATE", raising=False)
    return cache


def _sleeper(tmp_path: Path, *, ignore_sigterm: bool = False) -> subprocess.Popen[str]:
    """A child that says "ready" and then waits for a signal."""
    code = (
        "import signal, sys\n"
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else "")
        + "print('ready', flush=True)\nsignal.pause()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


# --- planning and state ------------------------------------------------------------------------


def test_parse_services_keeps_order_and_drops_duplicates() -> None:
    assert parse_services("kafka, kinesis,kafka") == ("kafka", "kinesis")


@pytest.mark.parametrize("text", ["kinesis,redis", "", " , "])
def test_parse_services_rejects_unknown_or_empty(text: str) -> None:
    with pytest.raises(LocalEmulatorError):
        parse_services(text)


def test_default_services_include_influxdb_only_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(installers, "Path", lambda path: Path("/nonexistent") / path.lstrip("/"))
    assert stack.default_services() == ("kinesis", "aws", "kafka")


def test_moto_as_kinesis_engine_serves_kinesis_and_aws_from_one_server() -> None:
    plan = stack._plan(("kinesis", "aws", "kafka"), "moto")
    assert plan == {"moto": ["kinesis", "aws"], "tansu": ["kafka"]}
    assert stack._plan(("kinesis", "aws"), "kinesalite") == {"kinesalite": ["kinesis"], "moto": ["aws"]}


def test_unknown_kinesis_engine_is_rejected() -> None:
    with pytest.raises(LocalEmulatorError, match="kinesis engine"):
        stack._plan(("kinesis",), "localstack")


def test_state_round_trips_through_json() -> None:
    server = RecordedServer("moto", ("kinesis", "aws"), "http://127.0.0.1:1", 42, ("python", "-m", "x"), "/l")
    state = StackState("/run", (server,), {"AWS_REGION": "us-east-1"})
    assert StackState.from_json(state.to_json()) == state


def test_unreadable_state_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"servers": [{"name": "x"}]}))
    with pytest.raises(LocalEmulatorError, match="unreadable"):
        stack.load_state(path)


def test_failed_up_stops_the_servers_it_already_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = _sleeper(tmp_path)
    first = ServerHandle("moto", "http://127.0.0.1:1", child, tmp_path / "moto.log")  # type: ignore[arg-type]

    def start_server(engine: str, run_dir: Path, **_: object) -> ServerHandle:
        if engine == "moto":
            return first
        raise ServerStartError(f"{engine} failed")

    monkeypatch.setattr(stack, "start_server", start_server)
    state_path = tmp_path / "state.json"
    with pytest.raises(ServerStartError, match="tansu failed"):
        stack.up(("aws", "kafka"), state_path=state_path)
    assert child.poll() is not None
    assert not state_path.exists()


def test_up_refuses_while_a_recorded_server_still_runs(tmp_path: Path) -> None:
    child = _sleeper(tmp_path)
    try:
        argv = processes._proc_cmdline(child.pid)
        assert argv is not None
        server = RecordedServer("moto", ("aws",), "http://127.0.0.1:1", child.pid, tuple(argv), "/l")
        state_path = tmp_path / "state.json"
        state_path.write_text(StackState(str(tmp_path), (server,)).to_json())
        with pytest.raises(LocalEmulatorError, match="already running"):
            stack.up(("aws",), state_path=state_path)
    finally:
        child.kill()
        child.wait()


def test_down_without_a_recorded_stack_stops_nothing(tmp_path: Path) -> None:
    assert stack.down(state_path=tmp_path / "absent.json") == []


# --- environment -------------------------------------------------------------------------------


def test_endpoint_variables_use_botocore_service_ids() -> None:
    assert endpoint_env_var("timestream-write") == "AWS_ENDPOINT_URL_TIMESTREAM_WRITE"
    assert endpoint_env_var("cloudwatch") == "AWS_ENDPOINT_URL_CLOUDWATCH"
    env = stack_environment(kinesis="http://k", aws="http://a", kafka="127.0.0.1:9")
    assert env["AWS_ENDPOINT_URL_KINESIS"] == "http://k"
    assert {
        env[name]
        for name in (
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_FIREHOSE",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL_CLOUDWATCH",
        )
    } == {"http://a"}
    assert env["SHARDLINE_KAFKA_BOOTSTRAP"] == "127.0.0.1:9"
    assert "SHARDLINE_INFLUXDB_URL" not in env


def test_export_lines_are_shell_safe_and_unset_the_profile() -> None:
    lines = export_lines({"A": "plain", "B": "two words; rm -rf /"})
    assert lines == ["unset AWS_PROFILE", "export A=plain", "export B='two words; rm -rf /'"]


# --- processes ---------------------------------------------------------------------------------


def test_stop_pid_leaves_a_process_whose_command_differs(tmp_path: Path) -> None:
    child = _sleeper(tmp_path)
    try:
        assert stop_pid(child.pid, ["something", "else"]) is False
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_stop_pid_stops_the_recorded_process(tmp_path: Path) -> None:
    child = _sleeper(tmp_path)
    argv = processes._proc_cmdline(child.pid)
    assert argv is not None and is_running(child.pid, argv)
    assert stop_pid(child.pid, argv, timeout=30) is True
    assert child.wait(timeout=30) == -signal.SIGTERM


def test_stop_pid_escalates_to_sigkill(tmp_path: Path) -> None:
    child = _sleeper(tmp_path, ignore_sigterm=True)
    argv = processes._proc_cmdline(child.pid)
    assert argv is not None
    assert stop_pid(child.pid, argv, timeout=0.5) is True
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_wait_ready_reports_an_early_exit_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = launch(
        "broken", [sys.executable, "-c", "print('port 1 already in use'); raise SystemExit(3)"], log_path=log
    )
    handle = ServerHandle("broken", "http://127.0.0.1:1", process, log)

    def never_ready() -> object:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ServerStartError) as raised:
        wait_ready(handle, never_ready, timeout=120)
    assert "exited with code 3" in str(raised.value)
    assert "port 1 already in use" in str(raised.value)


def test_wait_ready_gives_up_at_the_deadline_and_stops_the_server(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = launch("silent", [sys.executable, "-c", "import signal; signal.pause()"], log_path=log)
    handle = ServerHandle("silent", "http://127.0.0.1:1", process, log)

    def never_ready() -> object:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ServerStartError, match=r"did not answer.*ConnectionRefusedError"):
        wait_ready(handle, never_ready, timeout=0.3, interval=0.05)
    assert process.poll() is not None


def test_servers_do_not_inherit_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-looking-secret")
    monkeypatch.setenv("AWS_PROFILE", "production")
    log = tmp_path / "env.log"
    names = ("AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "X")
    code = f"import os; print(sorted(k for k in os.environ if k in {names!r}))"
    process = launch("env", [sys.executable, "-c", code], log_path=log, env={"X": "1"})
    assert process.wait(timeout=60) == 0
    assert log.read_text().strip() == "['X']"


def test_free_port_can_be_bound(tmp_path: Path) -> None:
    import socket

    port = processes.free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
    assert 0 < port < 65536


@pytest.mark.skipif(
    shutil.which("node") is None and os.environ.get("CI", "").lower() not in {"1", "true", "yes"},
    reason="node is not installed (in CI this fails instead)",
)
@pytest.mark.parametrize(
    "listen", ["listen(0, done)", "listen({port: 0}, done)", "listen(0, '0.0.0.0', done)"]
)
def test_node_preload_binds_listeners_to_loopback(listen: str) -> None:
    preload = Path(processes.__file__).with_name("node_preload.js")
    script = (
        f"const s = require('net').createServer(); const done = () => {{ "
        f"console.log(s.address().address); s.close(); }}; s.{listen};"
    )
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "--require", str(preload), "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "127.0.0.1"


# --- installers --------------------------------------------------------------------------------


def test_missing_node_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PrerequisiteMissingError) as raised:
        installers.ensure_npm_package(installers.KINESIS_MOCK)
    message = str(raised.value)
    assert "\n" not in message and "install Node.js" in message


def test_failed_npm_install_names_the_package_and_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "npm error\nnpm error code ENOTFOUND registry\n")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(PrerequisiteMissingError) as raised:
        installers.ensure_npm_package(installers.NpmPackage("kinesalite", "3.3.3", "cli.js"))
    message = str(raised.value)
    assert "\n" not in message
    assert "kinesalite@3.3.3" in message and "registry" in message and "ENOTFOUND" in message


def test_installed_npm_package_is_not_installed_again(
    monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> None:
    prefix = installers._npm_prefix()
    assert prefix.is_relative_to(isolated_cache)
    package_dir = prefix / "node_modules" / "kinesalite"
    package_dir.mkdir(parents=True)
    (package_dir / "package.json").write_text(json.dumps({"version": "3.3.3"}))
    (prefix / ".installed").touch()
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("npm must not run for an installed package")

    monkeypatch.setattr(subprocess, "run", no_run)
    assert installers.ensure_npm_package(installers.KINESALITE) == package_dir


def test_missing_influxd_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(installers, "Path", lambda path: Path("/nonexistent") / path.lstrip("/"))
    with pytest.raises(PrerequisiteMissingError, match="apt-get install influxdb"):
        installers.find_influxd()


def test_install_lock_is_exclusive_across_processes(isolated_cache: Path) -> None:
    code = (
        "import fcntl, sys\n"
        f"handle = open({str(isolated_cache / 'locks' / 'demo.lock')!r}, 'w')\n"
        "try:\n    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n"
        "    sys.exit(7)\n"
    )
    with installers.install_lock("demo"):
        held = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    free = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert (held.returncode, free.returncode) == (7, 0)


def test_cache_dir_honours_the_environment(isolated_cache: Path) -> None:
    from shardline.local.paths import cache_dir, state_file

    assert cache_dir() == isolated_cache
    assert state_file() == isolated_cache / "local-stack.json"
    assert os.path.isdir(isolated_cache)

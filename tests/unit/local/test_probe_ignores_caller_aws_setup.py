"""The readiness probe reaches the local server whatever AWS profile, config or proxy the caller has."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardline.local.probes import aws_probe


class _ListTables(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"TableNames": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dynamodb_double() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ListTables)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _refusing_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port: int = closed.getsockname()[1]
        return port


@pytest.mark.parametrize(
    "setting",
    [
        "AWS_PROFILE=absent-profile",
        "AWS_CONFIG_FILE=broken",
        "AWS_SHARED_CREDENTIALS_FILE=broken",
        "HTTP_PROXY",
    ],
)
def test_probe_ignores_the_callers_aws_setup(
    setting: str, dynamodb_double: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.ini"
    broken.write_text("[default\nnot ini")
    name, _, value = setting.partition("=")
    if name == "HTTP_PROXY":  # a proxy that cannot reach this machine's loopback
        for variable in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(variable, f"http://127.0.0.1:{_refusing_port()}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
    else:
        monkeypatch.setenv(name, str(broken) if value == "broken" else value)

    answer = aws_probe("dynamodb", dynamodb_double)()
    assert isinstance(answer, dict) and answer["TableNames"] == []

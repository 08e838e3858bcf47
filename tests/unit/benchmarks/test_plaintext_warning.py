"""stream-bench --target msk warns when it would talk plaintext to a host that is not loopback."""

from __future__ import annotations

import pytest

from benchmarks.targets import kafka_target


def _plaintext_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "plaintext" in r.getMessage()]


@pytest.mark.parametrize(
    ("bootstrap", "warned"), [("b-1.msk.example.com:9092", True), ("localhost:9092", False)]
)
def test_stream_bench_msk_warns_for_remote_plaintext(
    caplog: pytest.LogCaptureFixture, bootstrap: str, warned: bool
) -> None:
    with caplog.at_level("WARNING"):
        kafka_target(bootstrap, "plaintext")
    assert bool(_plaintext_warnings(caplog)) is warned

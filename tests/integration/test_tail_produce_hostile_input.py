"""``shardline produce`` and ``shardline tail``, in real processes over kinesis-mock, with the
input a careless or hostile writer gives them.

Whatever a line holds, produce sends it, skips it or fails it, and says so; whatever a record
holds, tail prints it as one line that cannot drive the terminal, and JSON that parses back
to the exact record.
"""

from __future__ import annotations

import base64
import json
import uuid

import boto3
import pytest

from tests.integration.test_tail_produce import _shardline

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HOSTILE = [
    b"\x1b]0;owned\x07title",  # retitle the window
    b"\x1b[2J\x1b[Hcleared",  # clear the screen, cursor home
    b"shown\rhidden",  # overwrite the line
    b"key=forged\xe2\x80\xa8second line",  # U+2028
    b"abc\xe2\x80\xaeevil",  # U+202E right-to-left override
    b"c1 \xc2\x9b31m csi",  # U+009B, the one-character CSI
    b"nul\x00byte",
    b"\xff\xfebinary",  # not UTF-8: base64
]
TERMINAL_UNSAFE = {*range(0x20), 0x7F, *range(0x80, 0xA0), 0x202E, 0x2028}


def test_hostile_records_reach_the_terminal_as_inert_text(kinesis_endpoint: str) -> None:
    stream = f"hostile-{uuid.uuid4().hex[:10]}"
    kinesis = boto3.client("kinesis", endpoint_url=kinesis_endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    env = {"AWS_ENDPOINT_URL_KINESIS": kinesis_endpoint}
    too_long = b"x" * (2 << 20)  # over any record: counted, never held

    stdin = b"\r\n".join([*HOSTILE, too_long, b"", b"last line, no line break"])
    produced = _shardline(
        "produce", f"kinesis://{stream}", "--key", "constant:dev\u202e1", env=env, stdin=stdin
    )
    err = produced.stderr.decode()
    assert "10 sent, 9 acknowledged, 1 failed (RecordTooLargeError: 1)" in err, err
    assert produced.returncode == 3  # refused input, nothing lost in delivery

    keyed = b'{"device": "dev\\u202e\\u001b[31m", "n": 1}\n[1, 2]\n{"device": true}\n{"device": "dev-2"}\n'
    by_field = _shardline(
        "produce", f"kinesis://{stream}", "--format", "ndjson", "--key", "field:device", env=env, stdin=keyed
    )
    err = by_field.stderr.decode()
    assert "line 2 is not a JSON object, so it has no field to key on; skipped" in err
    assert "line 3 has no usable key (field 'device' is of type bool" in err
    assert "2 sent, 2 acknowledged, 0 failed, 2 input line(s) skipped" in err
    assert by_field.returncode == 3

    sent = [*HOSTILE, b"last line, no line break", keyed.splitlines()[0], keyed.splitlines()[3]]
    from_start = ("--start", "trim_horizon", "--until-tip")
    text = _shardline("tail", f"kinesis://{stream}", *from_start, "--format", "text", env=env)
    assert text.returncode == 0, text.stderr.decode()
    lines = text.stdout.decode("utf-8").split("\n")
    assert lines.pop() == "" and len(lines) == len(sent)  # one line per record, none forged
    assert not [line for line in lines if TERMINAL_UNSAFE & {ord(c) for c in line}]
    assert "key=dev\\u202e1  \\x1b]0;owned\\x07title" in lines[0]
    assert lines[7].endswith("  base64:" + base64.b64encode(HOSTILE[7]).decode())
    assert "key=dev\\u202e\\x1b[31m  " in lines[9]

    documents = _shardline("tail", f"kinesis://{stream}", *from_start, env=env)
    assert documents.returncode == 0, documents.stderr.decode()
    raw_lines = documents.stdout.decode("utf-8").splitlines()
    assert not [line for line in raw_lines if TERMINAL_UNSAFE & {ord(c) for c in line}]
    rows = [json.loads(line) for line in raw_lines]
    read_back = [
        base64.b64decode(row["payload"]) if row["encoding"] == "base64" else row["payload"].encode()
        for row in rows
    ]
    assert read_back == sent  # the exact bytes, escapes and all
    assert [row["key"] for row in rows][-2:] == ["dev\u202e\x1b[31m", "dev-2"]

"""The Kinesis peer harness leaves none of its own set-up in the measured process."""

from __future__ import annotations

import gc
import weakref

import boto3

from benchmarks.peers.kinesis import _setup_client


def test_the_setup_client_takes_its_session_with_it() -> None:
    # boto3.client() would keep its session (and the JSON it loaded) for the whole process,
    # where every full collection of a client with one future per record walked it.
    default = boto3.DEFAULT_SESSION
    client = _setup_client("http://127.0.0.1:9")  # creating a client opens no connection
    loader = weakref.ref(client._loader)  # what the session loaded
    assert boto3.DEFAULT_SESSION is default
    del client
    gc.collect()
    assert loader() is None

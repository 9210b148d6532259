"""Broker queue names and the worker command line `gradq worker` runs (the tests run it too)."""

import pytest

from worker.celery_app import worker_argv
from worker.queues import broker_queue, plain_queues, split_broker_queue

DB = "3f2a9c1b0d4e5f60718293a4b5c6d7e8"


def test_a_worker_consumes_its_queues_on_its_database_only() -> None:
    argv = worker_argv(plain_queues(" a, b,a "), DB, 2, "INFO", "w1@%h")
    assert argv[argv.index("-Q") + 1] == "a@3f2a9c1b0d4e,b@3f2a9c1b0d4e"
    assert argv[argv.index("-c") + 1] == "2" and argv[-2:] == ["-n", "w1@%h"]
    # what users run is what the tests run: no mingle, no gossip (it fails after a reconnect)
    assert {"--without-mingle", "--without-gossip"} <= set(argv)


def test_broker_queue_names_round_trip() -> None:
    assert split_broker_queue(broker_queue("gpu@x", DB)) == ("gpu@x", DB[:12])
    assert split_broker_queue("gradq") == ("gradq", None)


@pytest.mark.parametrize("text", ["", " , ", "a@3f2a9c1b0d4e", "a,b@c"])
def test_queue_names_must_be_plain(text: str) -> None:
    with pytest.raises(ValueError, match="plain names"):
        plain_queues(text)

"""The run service on its own, as the CLI, the web and the Client use it: one Settings in,
plain data out, and one input error at its boundary."""

from __future__ import annotations

from dataclasses import replace

import pytest

from control import learning
from control.errors import BrokerUnreachableError, UserInputError
from control.service import Service
from storage.errors import NotFound, StorageError
from worker.core.config import RunConfig
from worker.settings import Settings

DEAD_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def service(tmp_path, small_mnist) -> Service:
    settings = Settings(
        home=tmp_path, broker_url=DEAD_BROKER, queue="service-test", cache_dir=tmp_path / "c"
    )
    return Service(settings)


def stages(*texts: str) -> list[learning.StageSpec]:
    return learning.schedule(list(texts))


def local_run(service: Service, small_mnist, *texts: str) -> int:
    config = RunConfig(dataset=str(small_mnist), dev_size=500, eval_every=10)
    run_id = service.train(config, stages(*texts), name="svc", send=False).run_id
    service.run_local(run_id)
    return run_id


def test_train_here_then_read_steer_and_keep_books(service, small_mnist):
    run_id = local_run(service, small_mnist, "0.5:20")
    run = service.run(run_id)
    assert (run["status"], run["iteration"], run["settings"]["dev_size"]) == ("succeeded", 20, 500)
    assert [p["iteration"] for p in service.metrics(run_id)] == [0, 10, 20]
    last = service.snapshots(run_id)[-1]["id"]
    report = service.evaluate(last, "dev", examples=2)
    assert report["count"] == 500 and len(report["misclassified"]) <= 2
    assert service.predict(last, 3, "test")["index"] == 3
    assert service.tag(run_id, add=["a", "b"], remove=["a"]) == ["b"]
    assert service.note(run_id, "why") >= 1
    more = service.continue_run(run_id, stages("0.25:10"), send=False)
    assert len(more.added) == 1 and more.sent == []
    paused = service.pause(run_id)
    assert paused.changed == more.added  # queued, no worker: paused at once
    with pytest.raises(BrokerUnreachableError):  # resuming sends: the broker is checked first
        service.resume(run_id)
    assert service.cancel(run_id).changed == more.added
    assert service.rm(run_id) >= 1
    with pytest.raises(NotFound):
        service.run(run_id)


def test_refused_values_come_out_as_one_input_error(service, small_mnist):
    config = RunConfig(dataset=str(small_mnist), dev_size=500)
    run_id = local_run(service, small_mnist, "0.5:10")
    snap = service.snapshots(run_id)[-1]["id"]
    with pytest.raises(UserInputError) as caught:  # the worker's WorkerInputError, translated
        service.fork(snap, stages("0.5:10"), send=False, eval_every=0)
    assert caught.value.option == "--eval-every"
    with pytest.raises(UserInputError, match="tag"):  # storage's StorageInputError, translated
        service.tag(run_id, add=["has space"])
    with pytest.raises(UserInputError, match="use dev, test or train"):
        service.evaluate(snap, "holdout")
    with pytest.raises(UserInputError, match="past the end"):
        service.predict(snap, 10**6, "test")
    assert service.train(config, stages("0.5:5"), send=False).run_id > run_id


def test_a_bad_database_url_is_configuration_not_input(tmp_path):
    bad = Service(Settings(home=tmp_path, database_url="postgres:/u:pw@host/db"))
    with pytest.raises(StorageError) as caught:
        bad.runs()
    assert not isinstance(caught.value, UserInputError)


def test_cluster_reports_a_dead_broker_and_a_missing_database_without_raising(service):
    out = replace(service.settings, database_url=f"sqlite:///{service.settings.home}/none.db")
    status = Service(out).cluster()
    assert status["broker_ok"] is False and "no broker" in status["broker_error"]
    assert status["database_ok"] is False and status["workers"] == []

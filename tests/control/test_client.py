"""The Python Client, used as a notebook would: real Redis, a real worker, PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from control.errors import UserInputError
from gradq import ERRORS, Client, WaitTimeoutError
from storage.errors import NotFound

DEAD = {  # the shell's settings point nowhere: everything must come from the Client's arguments
    "GRADQ_DATABASE_URL": "sqlite:////nonexistent/gradq.db",
    "GRADQ_BROKER_URL": "redis://127.0.0.1:1/0",
    "GRADQ_QUEUE": "nobody-serves-this",
}


@pytest.mark.redis
@pytest.mark.postgres
def test_a_notebook_session_against_a_real_worker(pg_stack, small_mnist, monkeypatch):
    pg_stack.start_worker()
    env = pg_stack.env
    for key, value in DEAD.items():
        monkeypatch.setenv(key, value)
    c = Client(env["GRADQ_DATABASE_URL"], env["GRADQ_BROKER_URL"], queue=env["GRADQ_QUEUE"])
    run = c.train(
        stages=["1.0:100", "0.5:100"], dataset=str(small_mnist), dev_size=500, name="notebook"
    )
    assert c.wait(run, timeout=300) == "succeeded"

    curve = c.metrics(run)
    assert isinstance(curve, pd.DataFrame)
    assert curve["iteration"].tolist() == [0, 50, 100, 150, 200]
    assert curve["lr"].tolist()[1:] == [1.0, 1.0, 0.5, 0.5]
    table = c.runs()
    assert table.loc[run, "name"] == "notebook" and table.loc[run, "status"] == "succeeded"

    snaps = c.snapshots(run)
    last = int(snaps["id"].iloc[-1])
    assert snaps["iteration"].iloc[-1] == 200
    params = c.snapshot(last)
    assert params["W1"].shape == (10, 784) and params["b3"].shape == (10,)
    assert not params["W1"].flags.writeable
    with np.load(io.BytesIO(c.export(last)), allow_pickle=False) as saved:
        assert np.array_equal(saved["W1"], params["W1"])
    report = c.evaluate(last, split="dev")
    assert report["count"] == 500
    assert report["accuracy"] == pytest.approx(curve["dev_acc"].iloc[-1], abs=1e-6)


def test_errors_are_the_packages_own_and_store_nothing(tmp_path, small_mnist, monkeypatch):
    for key, value in DEAD.items():
        monkeypatch.setenv(key, value)
    c = Client(f"sqlite:///{tmp_path / 'nb.db'}")
    mistakes = [
        lambda: c.train(stages=["fast:100"], dataset=str(small_mnist), local=True),
        lambda: c.train(hidden=(0,), dataset=str(small_mnist), local=True),
        lambda: c.train(optimizer="rmsprop", dataset=str(small_mnist), local=True),
        lambda: c.train(learning_rate=0.1, dataset=str(small_mnist), local=True),
    ]
    for mistake in mistakes:
        with pytest.raises(UserInputError) as caught:
            mistake()
        assert isinstance(caught.value, ERRORS)
    assert "learning_rate" in str(caught.value) and "batch_size" in str(caught.value)
    with pytest.raises(UserInputError, match="hidden") as caught:
        c.train(hidden=(0,), dataset=str(small_mnist), local=True)
    assert caught.value.option == "--hidden"
    assert not (tmp_path / "nb.db").exists()  # a refused call stores nothing, creates nothing


@pytest.mark.redis
def test_local_training_and_wait_in_this_process(tmp_path, small_mnist, redis_url, monkeypatch):
    for key, value in DEAD.items():
        monkeypatch.setenv(key, value)
    c = Client(f"sqlite:///{tmp_path / 'nb.db'}", redis_url)  # its queue: one nobody serves
    run = c.train(
        stages=["0.5:20"], dataset=str(small_mnist), dev_size=500, eval_every=10, local=True
    )
    assert c.wait(run, timeout=0) == "succeeded"
    assert c.metrics(run)["iteration"].tolist() == [0, 10, 20]
    with pytest.raises(NotFound, match="no run 999"):
        c.run(999)
    more = c.continue_run(run, ["0.25:10"])  # queued for workers that do not exist
    with pytest.raises(WaitTimeoutError, match="still queued"):
        c.wait(more, timeout=0.2, poll=0.05)

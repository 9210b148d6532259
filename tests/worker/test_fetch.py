"""Fetching MNIST from mirrors on loopback: fall-through, checksums, offline, no leftovers."""

import gzip
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from worker.data import fetch, mnist
from worker.errors import FetchError
from worker.settings import settings_from_env

NAMES = list(fetch.FILES)


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    """The real MNIST .gz files from GRADQ_DATA_DIR; skipped when absent, but a failure on CI."""
    raw = os.environ.get("GRADQ_DATA_DIR", "")
    directory = Path(raw)
    if raw and all((directory / f"{name}.gz").is_file() for name in NAMES):
        return directory
    reason = (
        f"real MNIST .gz files not found (GRADQ_DATA_DIR={raw!r}); set GRADQ_DATA_DIR to a "
        "dir holding the four IDX .gz files, e.g. ../shared/data/mnist"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must never be routed through a proxy from the environment."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")


class Handler(SimpleHTTPRequestHandler):
    """Serves a directory quietly and records every path asked for."""

    def __init__(self, *args: object, requests: list[str], **kwargs: object) -> None:
        self.requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP mirror of directory on 127.0.0.1: yields its base URL and the requests seen."""
    requests: list[str] = []
    handler = partial(Handler, requests=requests, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def good_mirror(mnist_dir: Path) -> Iterator[tuple[str, list[str]]]:
    with serve(mnist_dir) as mirror:
        yield mirror


@pytest.fixture(scope="module")
def fetched(
    tmp_path_factory: pytest.TempPathFactory, good_mirror: tuple[str, list[str]]
) -> tuple[Path, list[tuple[str, int, int | None]]]:
    """One real fetch into a fresh dir, with every progress call recorded."""
    events: list[tuple[str, int, int | None]] = []
    url, _ = good_mirror
    target = tmp_path_factory.mktemp("fetched") / "mnist"
    result = fetch.fetch(target, mirrors=[url], progress=lambda *event: events.append(event))
    assert result == target
    return target, events


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.mnist
def test_fetch_downloads_and_verifies(fetched: tuple[Path, list]) -> None:
    directory, _ = fetched
    assert fetch.verify(directory) == dict.fromkeys(NAMES, True)
    assert leftovers(directory) == sorted(NAMES + [f"{name}.gz" for name in NAMES])
    ds = mnist.load(directory)
    assert ds.x_train.shape == (60000, 784) and ds.y_train[0] == 5


@pytest.mark.mnist
def test_fetch_reports_progress_up_to_each_file_size(
    fetched: tuple[Path, list], mnist_dir: Path
) -> None:
    _, events = fetched
    for name in NAMES:
        size = (mnist_dir / f"{name}.gz").stat().st_size
        mine = [event for event in events if event[0] == name]
        assert mine[-1] == (name, size, size)
        assert [done for _, done, _ in mine] == sorted(done for _, done, _ in mine)


@pytest.mark.mnist
def test_second_fetch_makes_no_requests(
    fetched: tuple[Path, list], good_mirror: tuple[str, list[str]]
) -> None:
    directory, _ = fetched
    url, requests = good_mirror
    before = len(requests)
    fetch.fetch(directory, mirrors=[url])
    assert len(requests) == before


@pytest.mark.mnist
def test_local_gz_files_are_unpacked_without_requests(
    tmp_path: Path, mnist_dir: Path, good_mirror: tuple[str, list[str]]
) -> None:
    for name in NAMES:
        shutil.copy(mnist_dir / f"{name}.gz", tmp_path)
    url, requests = good_mirror
    before = len(requests)
    fetch.fetch(tmp_path, mirrors=[url])
    assert len(requests) == before
    assert fetch.verify(tmp_path) == dict.fromkeys(NAMES, True)
    assert all((tmp_path / name).is_file() for name in NAMES)


@pytest.mark.mnist
def test_verify_flags_a_corrupt_file_and_fetch_repairs_it(
    tmp_path: Path, fetched: tuple[Path, list], good_mirror: tuple[str, list[str]]
) -> None:
    label_file = NAMES[1]
    shutil.copy(fetched[0] / label_file, tmp_path)
    corrupt = bytearray((tmp_path / label_file).read_bytes())
    corrupt[100] ^= 0xFF
    (tmp_path / label_file).write_bytes(bytes(corrupt))
    assert fetch.verify(tmp_path) == {label_file: False}
    url, requests = good_mirror
    before = len(requests)
    fetch.fetch(tmp_path, mirrors=[url])
    assert fetch.verify(tmp_path) == dict.fromkeys(NAMES, True)
    assert f"/{label_file}.gz" in requests[before:]


@pytest.mark.mnist
def test_404_mirror_falls_through_to_the_next(
    tmp_path: Path, good_mirror: tuple[str, list[str]]
) -> None:
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as (empty_url, empty_requests):
        fetch.fetch(tmp_path / "data", mirrors=[empty_url, good_mirror[0]])
    assert sorted(empty_requests) == sorted(f"/{name}.gz" for name in NAMES)
    assert fetch.verify(tmp_path / "data") == dict.fromkeys(NAMES, True)


def bad_copies(directory: Path, mnist_dir: Path) -> Path:
    """A mirror dir whose files are wrong in each way a download can be wrong."""
    directory.mkdir()
    images, labels, test_images, test_labels = NAMES
    (directory / f"{images}.gz").write_bytes(b"not gzip at all")
    (directory / f"{labels}.gz").write_bytes(gzip.compress(b"gzip, but not the labels"))
    truncated = (mnist_dir / f"{test_images}.gz").read_bytes()
    (directory / f"{test_images}.gz").write_bytes(truncated[: len(truncated) // 2])
    shutil.copy(mnist_dir / f"{test_labels}.gz", directory)  # one good copy
    return directory


@pytest.mark.mnist
def test_bad_bytes_fall_through_to_the_next_mirror(
    tmp_path: Path, mnist_dir: Path, good_mirror: tuple[str, list[str]]
) -> None:
    with serve(bad_copies(tmp_path / "bad", mnist_dir)) as (bad_url, bad_requests):
        fetch.fetch(tmp_path / "data", mirrors=[bad_url, good_mirror[0]])
    assert len(bad_requests) == 4
    assert fetch.verify(tmp_path / "data") == dict.fromkeys(NAMES, True)


@pytest.mark.mnist
def test_all_mirrors_bad_names_the_file_and_leaves_nothing(tmp_path: Path, mnist_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    with (
        serve(bad_copies(tmp_path / "bad", mnist_dir)) as (bad_url, _),
        serve(tmp_path / "empty") as (empty_url, _),
        pytest.raises(FetchError) as caught,
    ):
        fetch.fetch(tmp_path / "data", mirrors=[bad_url, empty_url])
    message = str(caught.value)
    assert message.startswith("train-images-idx3-ubyte: no mirror had a good copy")
    assert f"{bad_url}train-images-idx3-ubyte.gz: not valid gzip data" in message
    assert f"{empty_url}train-images-idx3-ubyte.gz: HTTP 404" in message
    assert "\n" not in message
    assert leftovers(tmp_path / "data") == []


@pytest.mark.mnist
def test_truncated_file_leaves_no_partial_file(tmp_path: Path, mnist_dir: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    images, labels, test_images, _ = NAMES
    for name in (images, labels):
        (mirror / f"{name}.gz").symlink_to(mnist_dir / f"{name}.gz")
    whole = (mnist_dir / f"{test_images}.gz").read_bytes()
    (mirror / f"{test_images}.gz").write_bytes(whole[: len(whole) // 2])
    with serve(mirror) as (url, _), pytest.raises(FetchError) as caught:
        fetch.fetch(tmp_path / "data", mirrors=[url])
    assert str(caught.value).startswith(f"{test_images}: no mirror had a good copy")
    assert "not valid gzip data" in str(caught.value)
    kept = [images, f"{images}.gz", labels, f"{labels}.gz"]
    assert leftovers(tmp_path / "data") == sorted(kept)  # the good files, nothing half-written


def test_unreachable_mirror_says_so_and_suggests_import(tmp_path: Path) -> None:
    url = closed_port_url()
    with pytest.raises(FetchError) as caught:
        fetch.fetch(tmp_path / "data", mirrors=[url], timeout=5)
    message = str(caught.value)
    assert message.startswith("could not reach any MNIST mirror (")
    assert url in message and "train-images-idx3-ubyte" in message
    assert "import a file you have with `gradq data import FILE`" in message
    assert leftovers(tmp_path / "data") == []


def test_mirrors_come_from_the_settings(tmp_path: Path) -> None:
    first, second = closed_port_url(), closed_port_url()
    mirrors = settings_from_env({"GRADQ_MNIST_MIRRORS": f"{first}, {second}"}).mnist_mirrors
    assert mirrors == (first, second)
    with pytest.raises(FetchError, match="could not reach") as caught:
        fetch.fetch(tmp_path, mirrors=list(mirrors), timeout=5)
    assert first in str(caught.value) and second in str(caught.value)
    assert settings_from_env({}).mnist_mirrors == ()  # fetch then uses fetch.MIRRORS

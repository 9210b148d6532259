"""Every test starts from the same environment, whatever the caller has set.

GRADQ_* variables (and a few others that change what gradq or Rich does) are removed before each
test; a test that needs one sets it. Two kinds are kept, because they say where the test
suite's own inputs are, not how gradq behaves: GRADQ_TEST_* (the services to use) and
GRADQ_DATA_DIR (the real MNIST files). XDG_DATA_HOME points into the test's tmp_path, so a test
that sets no GRADQ_HOME still never touches the caller's ~/.local/share/gradq, and
GRADQ_CACHE_DIR into the session's tmp dir, never ~/.cache/gradq.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

KEPT = ("GRADQ_DATA_DIR",)
KEPT_PREFIX = "GRADQ_TEST_"
OTHERS = (
    "XDG_CACHE_HOME",  # the CSV cache's default place
    "COLUMNS",  # Rich's table width
    "LINES",
    "FORCE_COLOR",  # Rich would print colour codes into captured output
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "CELERY_BROKER_URL",  # Celery reads these itself
    "CELERY_RESULT_BACKEND",
    "CELERY_CONFIG_MODULE",
)


def caller_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The variables a test must not inherit from whoever runs the suite."""
    gradq = [
        k
        for k in environ
        if k.startswith("GRADQ_") and k not in KEPT and not k.startswith(KEPT_PREFIX)
    ]
    return gradq + [k for k in OTHERS if k in environ]


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One parsed-data cache for the whole session (a dataset is decoded once, as on a host),
    never the caller's ~/.cache/gradq."""
    return tmp_path_factory.mktemp("gradq-cache")


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_cache: Path) -> None:
    for name in caller_variables(os.environ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("GRADQ_CACHE_DIR", str(session_cache))

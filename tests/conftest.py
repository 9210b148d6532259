"""Shared fixtures live in plugin modules beside this file, one per kind of resource. The tests
are grouped by the package they test (core, storage, worker, control, web), with tests/system
for real workers, faults and the compose stack; each folder can import the helpers here and a
test module of another folder (test_cli's `gradq`)."""

import sys
from pathlib import Path

HERE = Path(__file__).parent
GROUPS = ("core", "storage", "worker", "control", "web", "system")
sys.path[:0] = [str(HERE), *(str(HERE / group) for group in GROUPS)]

pytest_plugins = ["fixtures_env", "fixtures_storage", "fixtures_services", "fixtures_browser"]

"""Shared fixtures live in plugin modules beside this file, one per kind of resource."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ["fixtures_env", "fixtures_storage", "fixtures_services", "fixtures_browser"]

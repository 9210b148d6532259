"""One settings object reads every GRADQ_* variable; README's table lists exactly those, with
the same defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from worker.settings import ENV_VARS, Settings, settings_from_env

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(GRADQ_\w+)` \| (.+?) \| .+ \|$")


def readme_table() -> dict[str, str]:
    """README's configuration table: variable -> its default column."""
    return {m[1]: m[2] for line in README.read_text().splitlines() if (m := ROW.match(line))}


def test_readme_lists_every_variable_the_settings_read_and_no_other():
    assert sorted(readme_table()) == sorted(ENV_VARS)


def test_readme_defaults_are_the_settings_defaults():
    defaults = Settings()
    fields = {var: name for name, var in _field_vars().items()}
    checked = 0
    for var, column in readme_table().items():
        shown = re.match(r"`([^`$~]+)`", column)  # a literal default, not a derived path
        if shown is None:
            continue
        value = getattr(defaults, fields[var])
        expected = float(shown[1]) if isinstance(value, int | float) else shown[1]
        assert value == expected, var
        checked += 1
    assert checked >= 8  # the URL, the queue and every number


def _field_vars() -> dict[str, str]:
    """Settings field -> its variable, from the comment that starts each field's line."""
    source = Path(__file__).resolve().parents[2] / "worker" / "settings.py"
    found = re.findall(r"^    (\w+): .*# (GRADQ_\w+)", source.read_text(), re.MULTILINE)
    return dict(found)


def test_every_field_names_its_variable():
    assert sorted(_field_vars().values()) == sorted(ENV_VARS)


def test_paths_follow_home_then_xdg_then_the_user_home():
    home = settings_from_env({"GRADQ_HOME": "/x"})
    assert (home.home, home.database_url) == (Path("/x"), "sqlite:////x/gradq.db")
    assert home.data_dir == Path("/x/mnist")
    xdg = settings_from_env({"XDG_DATA_HOME": "/d", "XDG_CACHE_HOME": "/c", "HOME": "/h"})
    assert (xdg.home, xdg.cache_dir) == (Path("/d/gradq"), Path("/c/gradq"))
    plain = settings_from_env({"HOME": "/h"})
    assert plain.home == Path("/h/.local/share/gradq")
    assert plain.data_dir == Path("/h/.local/share/gradq/mnist")
    assert plain.cache_dir == Path("/h/.cache/gradq")


def test_explicit_variables_win():
    env = {
        "GRADQ_HOME": "/x",
        "GRADQ_DATABASE_URL": "postgresql://u:p@h/db",
        "GRADQ_DATA_DIR": "/m",
        "GRADQ_CACHE_DIR": "/c",
        "GRADQ_MNIST_MIRRORS": "http://a/, ,http://b/",
    }
    s = settings_from_env(env)
    assert s.database_url == "postgresql://u:p@h/db"
    assert (s.data_dir, s.cache_dir) == (Path("/m"), Path("/c"))
    assert s.mnist_mirrors == ("http://a/", "http://b/")


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("GRADQ_CONCURRENCY", "two", "GRADQ_CONCURRENCY='two' is not a whole number"),
        ("GRADQ_LEASE_GRACE", "0", "GRADQ_LEASE_GRACE='0' must be finite and > 0"),
        ("GRADQ_SLICE_SECONDS", "inf", "must be finite"),
    ],
)
def test_a_malformed_number_names_its_variable(var, value, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        settings_from_env({var: value})

"""URLs: passwords hidden whatever the URL's shape, '@' in a password parsed as a password, and a
broken broker or database URL refused with what is wrong, never with the password."""

from __future__ import annotations

import pytest

from storage.db import normalize_url, redact_url, secrets_in
from worker.settings import settings_from_env, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
        ("postgres:/u:s3cret@host/db", "postgres:/u:***@host/db"),
        ("postgresql://u:pa/ss?x@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("redis://:hunter2@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),
        ("postgresql://h/db?password=zz&a=1", "postgresql://h/db?password=***&a=1"),
        ("u:s3cret@h", "u:***@h"),
        ("s3cret@h", "***@h"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("sqlite:////tmp/a@b/x.db", "sqlite:////tmp/a@b/x.db"),
    ],
)
def test_redact_url_hides_the_password_whatever_the_shape(url, shown):
    assert redact_url(url) == shown


def test_a_password_with_at_signs_is_one_password():
    assert normalize_url("postgresql://u:p@ss@host/db").password == "p@ss"
    assert normalize_url("postgresql://u:p@ss@host/db").host == "host"
    assert secrets_in("redis://:p@ss@h:6379/0") == ["p@ss"]


def test_url_secrets_come_from_both_urls():
    env = {
        "GRADQ_BROKER_URL": "redis://:b%40r@h/0",
        "GRADQ_DATABASE_URL": "postgresql://u:d1@h/db",
    }
    assert set(url_secrets(env)) == {"b%40r", "b@r", "d1"}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("redis://h:6x79/0", "port is not a number"),
        ("redis://h:99999/0", "port is not a number"),
        ("localhost:6379", "is not a broker URL"),
        ("redis:/:pw@h/0", "is not a broker URL"),
        ("redis://h:6379/zero", "a Redis database is a number"),
    ],
)
def test_a_broken_broker_url_says_what_is_wrong(value, fragment):
    with pytest.raises(ValueError, match=fragment) as caught:
        settings_from_env({"GRADQ_BROKER_URL": value})
    assert "pw" not in str(caught.value) and "unparseable" not in str(caught.value)


def test_good_broker_urls_pass():
    for url in ("redis://:p@ss@127.0.0.1:6379/0", "rediss://h/1", "amqp://guest:guest@h//"):
        assert settings_from_env({"GRADQ_BROKER_URL": url}).broker_url == url

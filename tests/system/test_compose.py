"""The container stack: docker-compose.yml validates and has the documented shape; the Dockerfile
builds a slim, non-root image with its dependencies cached apart from the source.

The compose checks run the `docker-compose` tool (it parses the file without a Docker engine)
and read its normalized output. Outside CI a missing tool skips them; with CI=true it fails them.
Inside the stack's own `tests` container (GRADQ_TEST_INSIDE_COMPOSE=1) they skip: the file is
checked on the host, where the tool is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures_services import require

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROFILES = ("tools", "test", "monitor", "ui")
SERVICES = {"redis", "postgres", "data-init", "worker", "control", "tests", "flower", "ui"}
APP_SERVICES = ("worker", "control", "tests")  # the gradq image, with the stack's env and data
PASSWORD = "s3cret-from-env"
# what docker-compose.yml reads from the environment; unset for the checks, so they are hermetic
IMAGE_VARIABLES = {
    "GRADQ_PYTHON_IMAGE": "python:3.11-slim",
    "GRADQ_REDIS_IMAGE": "redis:7-alpine",
    "GRADQ_POSTGRES_IMAGE": "postgres:16-alpine",
}
STACK_VARIABLES = {"GRADQ_PG_PASSWORD", "GRADQ_CONCURRENCY", "GRADQ_THREADS", *IMAGE_VARIABLES}


def compose(*args: str, env: dict[str, str] | None = None) -> str:
    """Run docker-compose on the project's file with every profile on; return its stdout."""
    if os.environ.get("GRADQ_TEST_INSIDE_COMPOSE") == "1":
        pytest.skip("inside the compose stack: docker-compose.yml is checked on the host")
    tool = shutil.which("docker-compose")
    require(
        tool is not None,
        "docker-compose is not on PATH; install it with `apt-get install docker-compose`",
    )
    assert tool is not None
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COMPOSE_") and k not in STACK_VARIABLES
    }
    profiles = [arg for p in PROFILES for arg in ("--profile", p)]
    result = subprocess.run(
        [tool, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *profiles, *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"docker-compose {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def service_blocks(config: str) -> dict[str, list[str]]:
    """The lines of each service in `docker-compose config` output, whatever its indentation."""
    lines = config.splitlines()
    start = lines.index("services:") + 1
    blocks: dict[str, list[str]] = {}
    indent: int | None = None
    name = None
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break
        if indent is None:
            indent = depth
        if depth == indent:
            name = line.strip().rstrip(":")
            blocks[name] = []
        elif name is not None:
            blocks[name].append(line)
    return blocks


def section(block: list[str], key: str) -> list[str]:
    """The lines under `key:` in a service block (its nested mapping or list)."""
    for i, line in enumerate(block):
        if line.strip() == f"{key}:":
            depth = len(line) - len(line.lstrip())
            out = []
            for sub in block[i + 1 :]:
                sub_depth = len(sub) - len(sub.lstrip())
                if sub_depth < depth or (sub_depth == depth and not sub.lstrip().startswith("-")):
                    break
                out.append(sub.strip())
            return out
    return []


def items(block: list[str], key: str) -> list[str]:
    """The entries of a list-valued key, e.g. command."""
    return [unquote(line[2:]) for line in section(block, key) if line.startswith("- ")]


def unquote(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


def environment(block: list[str]) -> dict[str, str]:
    env = {}
    for line in section(block, "environment"):
        key, sep, value = line.partition(": ")
        if sep:
            env[key] = unquote(value)
    return env


def mounts(block: list[str]) -> set[tuple[str, str]]:
    """(source, target) of each volume, from the short form or the long form of the output."""
    out, source = set(), None
    for line in section(block, "volumes"):
        entry = line.removeprefix("- ")
        if entry.startswith("source: "):
            source = entry.removeprefix("source: ")
        elif entry.startswith("target: ") and source is not None:
            out.add((source, entry.removeprefix("target: ")))
        elif line.startswith("- ") and ":" in entry and not entry.startswith("type:"):
            src, target = entry.split(":")[:2]
            out.add((src, target))
    return out


@pytest.fixture(scope="module")
def services() -> dict[str, list[str]]:
    return service_blocks(compose("config"))


@pytest.fixture(scope="module")
def services_with_password() -> dict[str, list[str]]:
    return service_blocks(compose("config", env={"GRADQ_PG_PASSWORD": PASSWORD}))


def test_compose_file_validates_with_docker_compose() -> None:
    assert compose("config", "-q").strip() == ""


def test_compose_file_has_the_documented_services() -> None:
    assert set(compose("config", "--services").split()) == SERVICES


def test_compose_file_declares_no_version_key() -> None:
    top_level = [line.split(":")[0] for line in COMPOSE_FILE.read_text().splitlines()]
    assert "version" not in top_level  # the Compose Specification needs none


def test_only_flower_and_the_ui_publish_a_port_and_only_on_loopback(services) -> None:
    assert set(services) == SERVICES
    publishing = {name for name, block in services.items() if section(block, "ports")}
    assert publishing == {"flower", "ui"}
    ports = " ".join(section(services["flower"], "ports"))
    assert "5555" in ports and "127.0.0.1" in ports
    ports = " ".join(section(services["ui"], "ports"))  # loopback only: actions need a token
    assert "- 127.0.0.1:8765:8765" in ports and "--host" in items(services["ui"], "command")


def test_up_starts_the_stack_and_one_off_services_sit_in_profiles(services) -> None:
    profiles = {name: items(block, "profiles") for name, block in services.items()}
    assert profiles == {
        "redis": [],
        "postgres": [],
        "data-init": [],
        "worker": [],
        "control": ["tools"],
        "tests": ["test"],
        "flower": ["monitor"],
        "ui": ["ui"],
    }


def test_redis_persists_its_queue_and_both_services_have_healthchecks(services) -> None:
    redis, postgres = services["redis"], services["postgres"]
    assert items(redis, "command")[:3] == ["redis-server", "--appendonly", "yes"]
    assert ("redisdata", "/data") in mounts(redis)
    assert any("redis-cli ping" in line for line in section(redis, "healthcheck"))
    assert any("pg_isready" in line for line in section(postgres, "healthcheck"))
    assert ("pgdata", "/var/lib/postgresql/data") in mounts(postgres)
    assert environment(postgres) == {
        "POSTGRES_USER": "gradq",
        "POSTGRES_DB": "gradq",
        "POSTGRES_PASSWORD": "gradq",
    }


def test_worker_runs_two_replicas_after_redis_and_postgres_are_healthy(services) -> None:
    worker = services["worker"]
    assert items(worker, "command") == ["gradq", "worker"]
    assert "replicas: 2" in section(worker, "deploy")
    depends = section(worker, "depends_on")
    assert depends.count("condition: service_healthy") == 2
    assert {"redis:", "postgres:"} <= set(depends)
    # the data volume is filled by one container before the two replicas mount it at once
    assert {"data-init:", "condition: service_completed_successfully"} <= set(depends)
    assert ("data", "/data") in mounts(services["data-init"])


def test_app_services_share_the_stack_env_and_the_data_volume(services) -> None:
    for name in APP_SERVICES:
        env = environment(services[name])
        assert env["GRADQ_BROKER_URL"].startswith("redis://redis:6379/"), name
        assert env["GRADQ_DATABASE_URL"] == "postgresql://gradq:gradq@postgres:5432/gradq", name
        assert env["GRADQ_DATA_DIR"] == "/data/mnist", name
        assert ("data", "/data") in mounts(services[name]), name
        assert "condition: service_healthy" in section(services[name], "depends_on"), name


def test_tests_service_runs_pytest_in_ci_mode_against_the_stack(services) -> None:
    tests = services["tests"]
    assert items(tests, "command") == ["python", "-m", "pytest", "-q"]
    assert "target: test" in section(tests, "build")
    env = environment(tests)
    assert env["CI"] == "true"
    assert env["GRADQ_TEST_REDIS_URL"].startswith("redis://redis:6379/")
    # apart from the stack's work (database 0), and the same database for the Celery app that
    # importing worker.tasks builds from GRADQ_BROKER_URL: status pings through it
    assert env["GRADQ_TEST_REDIS_URL"] != "redis://redis:6379/0"
    assert env["GRADQ_BROKER_URL"] == env["GRADQ_TEST_REDIS_URL"]
    for name in ("worker", "control"):
        assert environment(services[name])["GRADQ_BROKER_URL"] == "redis://redis:6379/0", name
    assert env["GRADQ_TEST_PG_URL"] == "postgresql+psycopg://gradq:gradq@postgres:5432/gradq"
    # the fixtures must read exactly these variables, or the suite would test 127.0.0.1
    fixtures = (ROOT / "tests" / "fixtures_services.py").read_text()
    fixtures += (ROOT / "tests" / "fixtures_storage.py").read_text()
    for var in ("GRADQ_TEST_REDIS_URL", "GRADQ_TEST_PG_URL"):
        assert f'"{var}"' in fixtures, var


def image(block: list[str]) -> str:
    """A service's `image:` value."""
    depth = min(len(line) - len(line.lstrip()) for line in block)
    return next(unquote(x.split(":", 1)[1]) for x in block if x[depth:].startswith("image:"))


def build_args(block: list[str]) -> dict[str, str]:
    """A service's build arguments, e.g. {"PYTHON_IMAGE": "python:3.11-slim"}."""
    args = {}
    for line in section(block, "build"):
        key, sep, value = line.partition(": ")
        if sep and key.isupper():
            args[key] = unquote(value)
    return args


def test_images_default_to_the_official_ones(services) -> None:
    assert image(services["redis"]) == "redis:7-alpine"
    assert image(services["postgres"]) == "postgres:16-alpine"
    for name in ("worker", "control", "tests", "flower"):
        assert build_args(services[name]) == {"PYTHON_IMAGE": "python:3.11-slim"}, name


def test_images_can_be_replaced_from_the_environment(services) -> None:
    """Without Docker Hub, scripts/compose-standins.sh's images stand in, and nothing else moves."""
    env = {name: f"local/{name.lower()}:1" for name in IMAGE_VARIABLES}
    s = service_blocks(compose("config", env=env))
    assert image(s["redis"]) == "local/gradq_redis_image:1"
    assert image(s["postgres"]) == "local/gradq_postgres_image:1"
    for name in ("worker", "control", "tests", "flower"):
        assert build_args(s[name]) == {"PYTHON_IMAGE": "local/gradq_python_image:1"}, name
    swapped = [x.replace("python:3.11-slim", env["GRADQ_PYTHON_IMAGE"]) for x in services["worker"]]
    assert s["worker"] == swapped


def test_worker_threads_and_processes_come_from_the_environment() -> None:
    s = service_blocks(compose("config", env={"GRADQ_CONCURRENCY": "1", "GRADQ_THREADS": "1"}))
    env = environment(s["worker"])
    assert (env["GRADQ_CONCURRENCY"], env["GRADQ_THREADS"]) == ("1", "1")


def test_postgres_password_comes_from_gradq_pg_password(services_with_password) -> None:
    s = services_with_password
    assert environment(s["postgres"])["POSTGRES_PASSWORD"] == PASSWORD
    for name in APP_SERVICES:
        assert f"gradq:{PASSWORD}@postgres:5432" in environment(s[name])["GRADQ_DATABASE_URL"]
    assert f"gradq:{PASSWORD}@postgres:5432" in environment(s["tests"])["GRADQ_TEST_PG_URL"]


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", "", DOCKERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            match = re.search(r"\bAS\s+(\S+)", args, re.IGNORECASE)
            current = []
            stages[match.group(1) if match else f"stage{len(stages)}"] = current
        current.append((instruction, args.strip()))
    return stages


def dockerfile_args() -> dict[str, str]:
    """The build arguments declared before the first FROM, with their defaults."""
    args = {}
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            break
        if line.startswith("ARG "):
            name, _, default = line.removeprefix("ARG ").partition("=")
            args[name] = default
    return args


def test_dockerfile_uses_the_slim_base_and_has_runtime_and_test_stages() -> None:
    stages = dockerfile_stages()
    assert dockerfile_args() == {"PYTHON_IMAGE": "python:3.11-slim"}  # Docker Hub's, by default
    assert stages["base"][0] == ("FROM", "${PYTHON_IMAGE} AS base")
    assert list(stages)[-1] == "runtime"  # a plain `docker build` gives the runtime image
    assert stages["test"][0][1].startswith("base ") and stages["runtime"][0][1].startswith("base ")
    env = " ".join(args for ins, args in stages["base"] if ins == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert ("WORKDIR", "/app") in stages["base"]


def test_dockerfile_stages_run_as_a_non_root_user() -> None:
    for name in ("test", "runtime"):
        users = [args for ins, args in dockerfile_stages()[name] if ins == "USER"]
        assert users, f"stage {name} sets no USER"
        assert users[-1].split(":")[0] not in ("root", "0"), name


def test_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    base = dockerfile_stages()["base"]
    copies = [args for ins, args in base if ins == "COPY"]
    assert copies == ["pyproject.toml ./"]  # only the dependency list reaches the cached layer
    assert any(ins == "RUN" and "pip install -r" in args for ins, args in base)
    for name in ("test", "runtime"):
        stage = dockerfile_stages()[name]
        source = next(i for i, (ins, args) in enumerate(stage) if ins == "COPY")
        assert "pip install --no-deps ." in stage[source + 1][1], name


def test_dockerignore_keeps_local_state_out_and_the_tests_in() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env"} <= ignored
    assert not ignored & {"tests", "tests/", "pyproject.toml", "README.md"}

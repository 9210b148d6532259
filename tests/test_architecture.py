"""docs/architecture.md stays true: its module map lists every module and only real ones, and the
import rules it states hold in the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
PACKAGES = ("storage", "worker", "control")


def listed(package: str) -> set[str]:
    """The `.py` names the map's section of `package` mentions, relative to the package."""
    section = re.search(rf"^### `{package}/`.*?(?=^### |^## )", DOC, re.S | re.M)
    assert section is not None, f"no section for {package}/"
    return set(re.findall(r"`([\w/]+\.py)`", section.group(0)))


def has_code(path: Path) -> bool:
    """More than a docstring: a package marker with nothing in it is not a module to map."""
    body = ast.parse(path.read_text()).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def modules(package: str) -> set[str]:
    """Every module of `package` but empty package markers, the top-level package's own
    `__init__`/`__main__`, and Alembic's migrations."""
    base = ROOT / package
    return {
        p.relative_to(base).as_posix()
        for p in base.rglob("*.py")
        if "migrations" not in p.parts
        and not (p.parent == base and p.name in ("__init__.py", "__main__.py"))
        and (p.name != "__init__.py" or has_code(p))
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_the_module_map_lists_every_module_and_only_real_ones(package: str) -> None:
    assert listed(package) == modules(package)


def imports_of(path: Path) -> set[str]:
    """The project modules `path` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in out if name.split(".")[0] in PACKAGES}


def allowed(name: str, rules: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in rules)


RULES = {  # where a module lives -> what of ours it may import (the map's prose)
    "storage": ("storage",),
    "worker/core": ("worker.core", "worker.errors"),
    "worker/data": ("worker.core", "worker.data", "worker.errors"),
    "worker": ("worker", "storage"),
    "control": ("control", "worker", "storage"),
}


def rule_for(path: Path) -> tuple[str, tuple[str, ...]]:
    rel = path.relative_to(ROOT).as_posix()
    place = max((p for p in RULES if rel.startswith(p + "/")), key=len)
    return place, RULES[place]


def test_imports_point_one_way() -> None:
    broken = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            place, rules = rule_for(path)
            broken += [
                f"{path.relative_to(ROOT)} ({place}) imports {name}"
                for name in sorted(imports_of(path))
                if not allowed(name, rules)
            ]
    assert broken == []


def test_the_import_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The check itself can fail: a core module importing storage is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from storage.db import session_scope\nimport worker.errors\n")
    names = imports_of(bad)
    assert names == {"storage.db", "storage.db.session_scope", "worker.errors"}
    wrong = sorted(n for n in names if not allowed(n, RULES["worker/core"]))
    assert wrong == ["storage.db", "storage.db.session_scope"]

"""Layering: tasks call services, services enqueue through their app's dispatch module.

No module under an app's `services/` or `selectors/` (or a `services.py`/`selectors.py`) may import a `tasks`
module, at the top or lazily inside a function, by any spelling. Every task name a dispatch module sends is a
registered task (a typo would drop the work silently in production, where tasks are sent by name)."""

import ast
import importlib
from pathlib import Path

import pytest
from celery import current_app

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "tests", "node_modules", "migrations", "var", "build", ".git"}


def layered_modules() -> list[Path]:
    """Every services/selectors module of the project's packages (new apps are picked up by their layout)."""
    found = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if SKIP_DIRS.intersection(parts):
            continue
        if {"services", "selectors"}.intersection(parts[:-1]) or path.stem in ("services", "selectors"):
            found.append(path)
    return sorted(found)


def _package(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).with_suffix("").parts[:-1])


def _resolve(node: ast.ImportFrom, path: Path) -> str:
    """The absolute module an `from X import ...` names (relative imports resolved against `path`)."""
    if not node.level:
        return node.module or ""
    base = _package(path)[: len(_package(path)) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_tasks(module: str) -> bool:
    return module == "tasks" or module.endswith(".tasks") or ".tasks." in module


def tasks_imports(source: str, path: Path) -> list[str]:
    """`line: what` for each import of a tasks module in `source` (any depth, any spelling)."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            hits += [f"{node.lineno}: import {a.name}" for a in node.names if _is_tasks(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node, path)
            names = [f"{module}.{a.name}" for a in node.names]
            if _is_tasks(module) or any(_is_tasks(n) for n in names):
                hits.append(f"{node.lineno}: from {module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0].value
            if called in ("import_module", "__import__") and isinstance(arg, str) and _is_tasks(arg):
                hits.append(f"{node.lineno}: {called}({arg!r})")
    return hits


def test_the_scan_covers_every_app_layer() -> None:
    packages = {path.relative_to(ROOT).parts[0] for path in layered_modules()}
    assert {"broker", "billing", "marketplace", "common"} <= packages


def test_services_and_selectors_never_import_a_tasks_module() -> None:
    offenders = {
        str(path.relative_to(ROOT)): hits
        for path in layered_modules()
        if (hits := tasks_imports(path.read_text(), path))
    }
    assert offenders == {}, "enqueue through the app's dispatch module (by task name) instead"


@pytest.mark.parametrize(
    "source",
    [
        "from broker.tasks import match_round",
        "import billing.tasks",
        "from broker import tasks",
        "from . import tasks",
        "from ..tasks import settle_lease",
        "def f():\n    from broker.tasks import match_round_soon\n    match_round_soon()",
        "def f():\n    import importlib\n    return importlib.import_module('billing.tasks')",
        "class A:\n    def m(self):\n        from marketplace import tasks as t",
    ],
)
def test_the_scan_finds_eager_and_lazy_imports(source: str) -> None:
    assert tasks_imports(source, ROOT / "broker" / "services" / "x.py")


@pytest.mark.parametrize(
    "source",
    ["from broker import dispatch", "from broker.services.tasking import x", "import broker.taskset", "x = 'tasks'"],
)
def test_the_scan_leaves_other_imports_alone(source: str) -> None:
    assert tasks_imports(source, ROOT / "broker" / "services" / "x.py") == []


def test_every_dispatched_task_name_is_a_registered_task() -> None:
    sent = []
    for app in ("broker", "billing"):
        module = importlib.import_module(f"{app}.dispatch")
        sent += [v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and ".tasks." in v]
        importlib.import_module(f"{app}.tasks")
    assert len(sent) >= 3
    assert [name for name in sent if name not in current_app.tasks] == []

"""The dependency order marketplace ← billing ← financing ← broker (see financing/__init__.py), checked on the
source: every import statement (module level or inside a function) and every importlib.import_module("…") call
with a literal name, parsed with `ast` over each app's .py files."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# app → the top-level packages it must never import
FORBIDDEN = {
    "marketplace": {"billing", "financing", "broker"},
    "billing": {"financing", "broker"},
    "financing": {"broker"},
}


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules.add(node.args[0].value)
    return modules


def violations(app: str) -> list[str]:
    found = []
    for path in sorted((ROOT / app).rglob("*.py")):
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"))):
            if module.split(".")[0] in FORBIDDEN[app]:
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_the_parser_sees_every_kind_of_import() -> None:
    source = (
        "import broker.models\n"
        "from financing.services import advances\n"
        "def f():\n"
        "    from broker.services.jobs import job_get\n"
        "    importlib.import_module('financing.tasks')\n"
        "from . import sibling\n"
        "from billingx import y\n"
    )
    assert imported_modules(source) == {
        "broker.models",
        "financing.services",
        "broker.services.jobs",
        "financing.tasks",
        "billingx",
    }


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_app_does_not_import_the_apps_above_it(app: str) -> None:
    assert list((ROOT / app).rglob("*.py")), f"no sources found for {app}"
    assert violations(app) == []

"""The dependency rule (docs/architecture.md): common ← notify ← marketplace ← billing ← financing ← broker ←
{demo, simulator}. An app imports only apps to its left; common, the ground, imports none. Every import counts, also
the lazy ones inside functions."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = {
    "common": 0,
    "notify": 1,
    "marketplace": 2,
    "billing": 3,
    "financing": 4,
    "broker": 5,
    "demo": 6,
    "simulator": 6,
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(app: str) -> list[str]:
    out = []
    for path in sorted((ROOT / app).rglob("*.py")):
        for line, module in imported_modules(path):
            other = module.split(".")[0]
            if other != app and LAYER.get(other, -1) >= LAYER[app]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("app", [app for app in LAYER if (ROOT / app).is_dir()])
def test_app_imports_only_apps_below_it(app: str) -> None:
    assert violations(app) == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from broker.models import Job\n    import billing.models\n")
    assert imported_modules(module) == [(2, "broker.models"), (3, "billing.models")]

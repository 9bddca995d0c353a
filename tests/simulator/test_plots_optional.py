"""matplotlib is an optional extra (requirements-plots.txt): only `simulate --plots` needs it, and without it that
option fails at once with the install command, before any database work or simulation."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from broker.models import Job
from marketplace.models import Provider

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_plots_without_matplotlib_say_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(CommandError, match=r"pip install -r requirements-plots\.txt"):
        call_command("simulate", in_place=True, providers=2, customers=2, hours=1, plots=tmp_path / "charts")
    assert not Provider.objects.exists() and not Job.objects.exists()  # nothing ran
    assert not (tmp_path / "charts").exists()


def test_the_web_process_and_the_simulator_load_without_matplotlib() -> None:
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "import django\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('check')\n"
        "import config.urls, config.wsgi, simulator.simulation, simulator.management.commands.simulate\n"
        "print('loaded')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("loaded")

"""The README works on a fresh clone (issue 17, point 8): the two commands first, the tools in .venv named as such,
nothing named that the clone lacks."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ACTIVATE = "source .venv/bin/activate"
BARE = re.compile(r"^(python|pip|rigshift|rigshift-agent)(\s|$)")


def _blocks() -> list[str]:
    return re.findall(r"```(?:sh|bash)?\n(.*?)```", README, flags=re.DOTALL)


def test_the_two_commands_come_first() -> None:
    first = _blocks()[0]
    assert "make run" in first and "make test" in first
    assert README.index("make run") < README.index(ACTIVATE) < README.index("rigshift login")


def test_cli_agent_python_and_pip_examples_say_they_live_in_the_venv() -> None:
    for block in _blocks():
        lines = [line.strip() for line in block.splitlines()]
        for number, line in enumerate(lines):
            if BARE.match(line):
                earlier = [previous for previous in lines[:number] if previous.startswith(ACTIVATE)]
                assert earlier, f"{line!r} runs before `{ACTIVATE}` in its example"
    for span in re.findall(r"`([^`\n]+)`", README):
        if re.match(r"(python -m|pip install)\b", span):
            raise AssertionError(f"`{span}`: say .venv/bin/ (or activate the venv first)")


def test_everything_the_readme_names_is_in_the_clone() -> None:
    names = set(re.findall(r"\]\(([^)#]+)\)", README))  # links and images
    tokens = re.findall(r"`([^`\s]+)`", README)
    top = (
        r"(docs|data|agent|tests|scripts|bench|static|templates|common|marketplace|billing|broker|demo|simulator|\.ci)"
    )
    names |= {t for t in tokens if re.fullmatch(top + r"/[\w./<>-]*", t)}
    names |= {
        t for t in tokens if re.fullmatch(r"(requirements[\w-]*\.txt|Dockerfile|docker-compose\.yml|Makefile)", t)
    }
    missing = []
    for name in sorted(names):
        if name.startswith(("http://", "https://")) or "<" in name:
            continue
        if not (ROOT / name.rstrip("/")).exists():
            missing.append(name)
    assert not missing, missing
    assert len(names) > 8  # the check looked at something


def test_readme_says_where_screenshots_are_kept() -> None:
    assert "var/screenshots/" in README
    for image in re.findall(r"\]\((docs/img/[^)]+)\)", README):
        assert (ROOT / image).stat().st_size > 10_000

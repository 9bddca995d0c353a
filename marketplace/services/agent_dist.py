"""The node agent as an installable package, served by the server: a wheel built from `agent/` (pure Python,
no build tools needed at run time: the files are zipped as the wheel format says), and the install script.

The wheel is rebuilt when a source file changes (its name carries the agent's version; a content hash keeps the
cached copy under VAR_DIR honest), so a provider's `pip install` always gets the code this server runs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

AGENT_DIR = Path(settings.BASE_DIR) / "agent"
PACKAGES = ("rigshift_client", "rigshift_agent", "rigshift_cli")
DIST = "rigshift_agent"
_EPOCH = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes


@dataclass(frozen=True)
class AgentWheel:
    filename: str
    version: str
    content: bytes
    sha256: str


def agent_version() -> str:
    text = (AGENT_DIR / "rigshift_agent" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    return found.group(1) if found else "0.0.0"


def _sources() -> list[Path]:
    files = []
    for package in PACKAGES:
        root = AGENT_DIR / package
        files += [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(files)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata(version: str) -> dict[str, bytes]:
    info = f"{DIST}-{version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        "Name: rigshift-agent\n"
        f"Version: {version}\n"
        "Summary: RigShift node agent (rigshift-agent) and customer CLI (rigshift)\n"
        "Requires-Python: >=3.11\n"
        "Requires-Dist: requests>=2.31\n"
        "Provides-Extra: nvidia\n"
        'Requires-Dist: nvidia-ml-py>=12; extra == "nvidia"\n'
    )
    wheel = "Wheel-Version: 1.0\nGenerator: rigshift-server\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entry_points = "[console_scripts]\nrigshift = rigshift_cli.main:main\nrigshift-agent = rigshift_agent.cli:main\n"
    return {
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": wheel.encode(),
        f"{info}/entry_points.txt": entry_points.encode(),
        f"{info}/top_level.txt": ("\n".join(PACKAGES) + "\n").encode(),
    }


def agent_wheel_build() -> AgentWheel:
    """Zip `agent/`'s packages into a py3-none-any wheel (in memory)."""
    version = agent_version()
    entries = {p.relative_to(AGENT_DIR).as_posix(): p.read_bytes() for p in _sources()}
    entries.update(_metadata(version))
    record_name = f"{DIST}-{version}.dist-info/RECORD"
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in sorted(entries.items()))
    entries[record_name] = (record + f"{record_name},,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    content = buffer.getvalue()
    return AgentWheel(f"{DIST}-{version}-py3-none-any.whl", version, content, hashlib.sha256(content).hexdigest())


def agent_wheel() -> AgentWheel:
    """The current wheel, from the cache under VAR_DIR when the sources have not changed."""
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.relative_to(AGENT_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    cache = Path(settings.VAR_DIR) / "agent" / f"{agent_version()}-{digest.hexdigest()[:16]}.whl"
    if cache.exists():
        content = cache.read_bytes()
        return AgentWheel(
            f"{DIST}-{agent_version()}-py3-none-any.whl", agent_version(), content, hashlib.sha256(content).hexdigest()
        )
    wheel = agent_wheel_build()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_bytes(wheel.content)
    tmp.replace(cache)
    return wheel

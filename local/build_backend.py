"""A PEP 517/660 build backend of a few lines, so installing Keyguard needs no download.

``./dev`` installs the project editable (``pip install --no-deps --no-build-isolation -e .``)
only to get the ``keyguard`` console script: packages come from the hashed locks alone. The
setuptools bundled with a Python 3.11 venv cannot build an editable wheel without the
``wheel`` package, which is in no lock; this backend needs nothing but the standard library.

* :func:`build_editable` — a wheel holding a ``.pth`` line (the repository root, so
  ``shared`` and ``handlers`` import from the source tree the Functions app also runs) and
  the ``[project.scripts]`` entry points;
* :func:`build_wheel` — the same packages copied in (``shared``, ``handlers``);
* :func:`build_sdist` — refused: Keyguard ships from the repository.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "handlers")


def _project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["project"])


def _dist_info(project: dict[str, Any]) -> dict[str, str]:
    name, version = project["name"], project["version"]
    scripts = "".join(f"{k} = {v}\n" for k, v in (project.get("scripts") or {}).items())
    return {
        "METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: {project.get('description', '')}\n"
            f"Requires-Python: {project.get('requires-python', '')}\n"
        ),
        "WHEEL": (
            "Wheel-Version: 1.0\nGenerator: keyguard local/build_backend.py\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        "entry_points.txt": f"[console_scripts]\n{scripts}",
    }


def _write(wheel_directory: str, files: dict[str, bytes]) -> str:
    project = _project()
    name, version = project["name"], project["version"]
    info = f"{name}-{version}.dist-info"
    files = {**files, **{f"{info}/{k}": v.encode() for k, v in _dist_info(project).items()}}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return filename


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    return []


def build_editable(
    wheel_directory: str, config_settings: Any = None, metadata_directory: Any = None
) -> str:
    """An editable wheel: a ``.pth`` pointing at the repository, and the console scripts."""
    return _write(wheel_directory, {"keyguard_editable.pth": f"{ROOT}\n".encode()})


def build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: Any = None
) -> str:
    """A plain wheel of the runtime packages (not used by ``./dev``; for completeness)."""
    files = {
        str(path.relative_to(ROOT)): path.read_bytes()
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    return _write(wheel_directory, files)


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    raise NotImplementedError("Keyguard ships from the repository; no sdist is built")

"""Where the ``keyguard`` command gets its settings and credential.

Settings: the process environment, overlaid with ``--settings FILE`` when given. The file is
a Functions ``local.settings.json`` (its ``Values``), a flat JSON object, or ``KEY=VALUE``
lines (``#`` comments, optional ``export``; what ``./dev stack`` prints). Its values are also
put into the process environment, so the credential sees ``IDENTITY_ENDPOINT``,
``AZURE_CLIENT_ID`` and the like from the same file.

Credential: ``DefaultAzureCredential`` (``AZURE_CLIENT_ID`` names a user-assigned identity,
as for the app) — the Function App itself uses its managed identity alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.runtime import Runtime


def read_settings_file(path: Path) -> dict[str, str]:
    """The settings a file holds. Raises :class:`ConfigError` naming the file when it cannot
    be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--settings", f"cannot read {path}: {exc.strerror}") from exc
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data: Any = json.loads(text)
        except ValueError as exc:
            raise ConfigError("--settings", f"{path} is not valid JSON: {exc}") from exc
        if isinstance(data.get("Values"), Mapping):
            data = data["Values"]
        return {str(k): str(v) for k, v in data.items() if v is not None}
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--settings", f"{path} line {number} is not KEY=VALUE")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def build_runtime(settings_file: Path | None, *, dry_run: bool = False) -> Runtime:
    """The runtime the commands use: validated settings, ``DefaultAzureCredential``.

    ``dry_run`` forces ``KEYGUARD_DRY_RUN=true`` (plan and report, write nothing to Azure).
    Raises :class:`ConfigError` naming the first bad setting.
    """
    from shared.config import load_settings
    from shared.runtime import Runtime

    if settings_file is not None:
        os.environ.update(read_settings_file(settings_file))
    env: dict[str, str] = dict(os.environ)
    if dry_run:
        env["KEYGUARD_DRY_RUN"] = "true"
    settings = load_settings(env)
    return Runtime.from_settings(settings, _credential(settings.managed_identity_client_id))


def _credential(client_id: str | None) -> Any:
    from azure.identity import DefaultAzureCredential

    if client_id:
        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return DefaultAzureCredential()

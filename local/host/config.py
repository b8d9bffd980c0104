"""host.json, as far as the local host honours it: queue trigger settings and the timeout.

The Functions host reads ``extensions.queues`` (extension 5.x names and defaults, see
azure-facts §8.3) and ``functionTimeout``. TimeSpans are ``[d.]hh:mm:ss[.fff]`` strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import KeyguardError

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


class HostConfigError(KeyguardError):
    """host.json is missing, not JSON, or holds a value the host cannot use."""


def parse_timespan(value: str) -> float:
    """Seconds in a .NET TimeSpan string such as ``00:00:30`` or ``1.02:00:00.5``.

    Raises
    ------
    HostConfigError
        When the text is not a TimeSpan.
    """
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise HostConfigError(f"{value!r} is not a TimeSpan ([d.]hh:mm:ss[.fff])")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class QueueSettings:
    """``extensions.queues`` with the extension-5.x defaults."""

    batch_size: int = 16
    new_batch_threshold: int | None = None
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @property
    def threshold(self) -> int:
        """Fetch a new batch when fewer than this many messages are in flight."""
        if self.new_batch_threshold is not None:
            return self.new_batch_threshold
        return max(1, self.batch_size // 2)


@dataclass(frozen=True)
class HostConfig:
    """What the local host reads from host.json."""

    queues: QueueSettings = QueueSettings()
    function_timeout: float = 600.0
    path: Path | None = None


def _queue_settings(raw: dict[str, Any]) -> QueueSettings:
    try:
        batch = int(raw.get("batchSize", 16))
        settings = QueueSettings(
            batch_size=batch,
            new_batch_threshold=(
                int(raw["newBatchThreshold"]) if "newBatchThreshold" in raw else None
            ),
            max_dequeue_count=int(raw.get("maxDequeueCount", 5)),
            visibility_timeout=parse_timespan(raw.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=max(
                0.1, parse_timespan(raw.get("maxPollingInterval", "00:01:00"))
            ),
            message_encoding=str(raw.get("messageEncoding", "base64")).lower(),
        )
    except (TypeError, ValueError) as exc:
        raise HostConfigError(f"invalid extensions.queues: {exc}") from exc
    if not 1 <= settings.batch_size <= 32:
        raise HostConfigError(f"extensions.queues.batchSize must be 1-32, not {batch}")
    if settings.max_dequeue_count < 1:
        raise HostConfigError("extensions.queues.maxDequeueCount must be at least 1")
    if settings.message_encoding not in {"base64", "none"}:
        raise HostConfigError("extensions.queues.messageEncoding must be base64 or none")
    return settings


def load_host_config(path: Path | str) -> HostConfig:
    """Read host.json.

    Raises
    ------
    HostConfigError
        Unreadable file, invalid JSON, a version other than 2.0 or an invalid setting.
    """
    file = Path(path)
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise HostConfigError(f"cannot read host.json at {file}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("version") != "2.0":
        raise HostConfigError(f'{file}: expected an object with "version": "2.0"')
    queues = raw.get("extensions", {}).get("queues", {})
    timeout = raw.get("functionTimeout")
    return HostConfig(
        queues=_queue_settings(queues),
        function_timeout=parse_timespan(timeout) if timeout else 600.0,
        path=file,
    )


_SETTING_REF = re.compile(r"%([^%]+)%")


def resolve_app_settings(value: str, env: Mapping[str, str]) -> str:
    """Replace ``%NAME%`` with the app setting ``NAME``, as binding expressions do.

    Raises
    ------
    HostConfigError
        When a referenced setting is not set (the Functions host refuses to index then too).
    """

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise HostConfigError(f"binding expression %{name}%: app setting {name} is not set")
        return env[name]

    return _SETTING_REF.sub(lookup, value)


def load_local_settings(path: Path | str) -> dict[str, str]:
    """The ``Values`` of a ``local.settings.json`` (app settings for local runs).

    Raises
    ------
    HostConfigError
        Unreadable, not JSON, encrypted (``IsEncrypted`` true) or ``Values`` not an object.
    """
    file = Path(path)
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise HostConfigError(f"cannot read {file}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("IsEncrypted"):
        raise HostConfigError(f"{file}: expected an unencrypted local.settings.json object")
    values = raw.get("Values", {})
    if not isinstance(values, dict):
        raise HostConfigError(f"{file}: Values must be an object")
    return {str(k): str(v) for k, v in values.items()}

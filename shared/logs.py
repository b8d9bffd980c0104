"""Structured (JSON) logging with correlation ids.

Every line about an event or a work item carries the ids needed to follow it: ``event_id``,
``work_key``, ``correlation_id`` (and whatever else the caller passes). Use it as::

    from shared.logs import get_logger
    log = get_logger(__name__)
    log.info("intake.enqueued", event_id=event.id, work_key=item.key, kind=item.kind)

Each call emits one JSON object per line: ``{"ts", "level", "logger", "msg", ...fields}``.
Values must never include secret values or key material: callers pass ids and URLs only,
and :func:`redact` strips query strings (SAS tokens, function keys) from URLs.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_FIELDS_ATTR = "keyguard_fields"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, including the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, _FIELDS_ATTR, {}))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


class StructuredLogger:
    """A thin wrapper over :class:`logging.Logger` taking fields as keyword arguments."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, msg: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, exc_info=exc_info, extra={_FIELDS_ATTR: fields})

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, False, fields)

    def error(self, msg: str, *, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, msg, exc_info, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, True, fields)


def get_logger(name: str) -> StructuredLogger:
    """A structured logger under the ``keyguard`` hierarchy (``x`` → ``keyguard.x``)."""
    full = name if name.startswith("keyguard") else f"keyguard.{name}"
    return StructuredLogger(logging.getLogger(full))


def configure(level: int = logging.INFO) -> None:
    """Send Keyguard's loggers to stderr as JSON lines (idempotent).

    In Azure the Functions worker also forwards records to Application Insights; the JSON
    message keeps the fields queryable there too.
    """
    root = logging.getLogger("keyguard")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)


def redact(url: str) -> str:
    """``url`` without its query string and fragment (they may carry keys or SAS tokens)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

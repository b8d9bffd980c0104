"""Recorded real Azure interactions (``tests/fixtures/azure/real-traffic/*.yaml``) as data.

Each file is JSON (valid YAML) after ``#`` header lines naming its source. Shapes in use:
``{"request", "response"}`` (one interaction), ``{"sequence": [...]}`` / ``{"pages": [...]}``
(several, in order; entries without a ``request`` are notes) and, for header studies, a mapping
of names to header sets (no interactions). :func:`interactions` flattens all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from tests.fixtures.samples import SAMPLES_DIR

TRAFFIC_DIR = SAMPLES_DIR / "real-traffic"


@dataclass(frozen=True)
class Interaction:
    """One recorded request and the answer real Azure gave."""

    source: str  # file name under real-traffic/
    index: int  # position among the file's interactions
    method: str
    uri: str
    request_headers: dict[str, Any]
    request_body: Any
    status: int
    headers: dict[str, Any] = field(default_factory=dict)
    body: Any = None

    @property
    def path(self) -> str:
        """The request path, lower-cased, without a trailing slash (ARM ids are case-blind)."""
        return urlsplit(self.uri).path.rstrip("/").lower()

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or ""

    @property
    def query(self) -> dict[str, str]:
        """Query parameters other than ``api-version`` (the replay matches on these)."""
        return {k.lower(): v for k, v in parse_qsl(urlsplit(self.uri).query) if k != "api-version"}

    def header(self, name: str) -> str | None:
        """A response header by case-blind name (first value of a recorded list)."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return str(value[0] if isinstance(value, list) else value)
        return None

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def recording_files() -> list[Path]:
    """Every recorded-traffic file, sorted by name."""
    return sorted(TRAFFIC_DIR.glob("*.yaml"))


@cache
def _load(name: str) -> Any:
    return yaml.safe_load((TRAFFIC_DIR / name).read_text(encoding="utf-8"))


def header_lines(name: str) -> list[str]:
    """The ``#`` provenance lines at the top of a recording."""
    lines = (TRAFFIC_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.startswith("#")]


def interactions(name: str) -> list[Interaction]:
    """The interactions of one recording, in recorded order."""
    data = _load(name)
    raw: list[dict[str, Any]]
    if "request" in data:
        raw = [data]
    else:
        raw = [e for key in ("sequence", "pages") for e in data.get(key, []) if "request" in e]
    out = []
    for i, entry in enumerate(raw):
        req, resp = entry["request"], entry["response"]
        out.append(
            Interaction(
                source=name,
                index=i,
                method=req["method"].upper(),
                uri=req["uri"],
                request_headers=dict(req.get("headers") or {}),
                request_body=req.get("body"),
                status=int(resp["status"]),
                headers=dict(resp.get("headers") or {}),
                body=resp.get("body"),
            )
        )
    return out


def interaction(name: str, index: int = 0) -> Interaction:
    """One interaction of a recording (by position; negative counts from the end)."""
    return interactions(name)[index]


def all_interactions() -> list[Interaction]:
    """Every interaction of every recording."""
    return [i for path in recording_files() for i in interactions(path.name)]


def raw(name: str) -> Any:
    """A recording's parsed content as stored (for header-study files)."""
    return _load(name)

"""An azure-core ``HttpTransport`` that answers from recorded real Azure traffic.

:class:`ReplayTransport` is a ``RequestsTransport`` whose ``requests.Session`` has, mounted for
``https://``, an adapter that never opens a socket: it finds the recorded interaction the
request matches and builds the ``requests.Response`` real Azure gave. Both extension points
are public (``RequestsTransport(session=...)`` and ``Session.mount``), so every byte goes
through azure-core's and the SDK's own response handling, with no SDK internals patched.

Matching: method and path (case-blind, trailing ``/`` and host ignored, as ARM ids are
case-blind and the recorders renamed hosts); among several recorded answers for one request,
the first not yet served whose query parameters agree most (``api-version`` ignored). Once
every recorded answer for a request has been served, the last is served again (polling).
A request nothing was recorded for raises :class:`UnrecordedRequest`: a replay test fails
loudly rather than answering something invented.

Key Vault's challenge: the data-plane clients send their first request without a token and
expect a 401 naming the authority and resource. A token-less request is answered with a
recorded 401 challenge (one carrying ``WWW-Authenticate``) for the same method and path when
one is scripted and not yet served, so a test can serve real Azure's own challenge (or a
changed one). Where a recording starts after that exchange, the transport answers the
challenge itself (``https://vault.azure.net``, as every recording shows), so production's
challenge verification stays on.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPResponse

from tests.replay.recordings import Interaction

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
    'resource="https://vault.azure.net"'
)
# Recorded headers that no longer describe the replayed bytes.
_DROPPED = frozenset({"content-length", "transfer-encoding", "content-encoding"})


class UnrecordedRequest(AssertionError):
    """Keyguard sent a request the recordings hold no answer for."""


@dataclass
class Sent:
    """One request the transport answered, and with what."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any
    answer: Interaction | None  # None: the synthetic Key Vault challenge

    @property
    def path(self) -> str:
        return urlsplit(self.url).path.rstrip("/").lower()


@dataclass
class _Slot:
    interaction: Interaction
    served: int = 0


@dataclass
class Script:
    """The recorded answers a transport may give, and what it has given."""

    slots: list[_Slot] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recorded_challenge(self, method: str, path: str) -> Interaction | None:
        """A scripted, not yet served 401 challenge for this request, marked served."""
        for slot in self.slots:
            answer = slot.interaction
            if (
                slot.served == 0
                and answer.status == 401
                and answer.method == method
                and answer.path == path
                and answer.header("WWW-Authenticate")
            ):
                slot.served += 1
                return answer
        return None

    def pick(self, method: str, path: str, query: Mapping[str, str]) -> Interaction:
        candidates = [
            s for s in self.slots if s.interaction.method == method and s.interaction.path == path
        ]
        if not candidates:
            known = sorted({f"{s.interaction.method} {s.interaction.path}" for s in self.slots})
            raise UnrecordedRequest(
                f"no recorded answer for {method} {path} (recorded: {', '.join(known)})"
            )

        def agreement(slot: _Slot) -> int:
            recorded = slot.interaction.query
            return sum(1 for k, v in recorded.items() if query.get(k) == v)

        fresh = [s for s in candidates if s.served == 0]
        # the best fresh answer (max keeps the first of equals: recorded order), else the last
        best = max(fresh, key=agreement) if fresh else candidates[-1]
        best.served += 1
        return best.interaction


class _ReplayAdapter(BaseAdapter):
    def __init__(self, script: Script) -> None:
        super().__init__()
        self._script = script

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        method = request.method.upper()
        path = parts.path.rstrip("/").lower()
        query = {k.lower(): v for k, v in parse_qsl(parts.query) if k != "api-version"}
        headers = {k: str(v) for k, v in request.headers.items()}
        body = _decode(request.body)
        with self._script.lock:
            if _needs_challenge(parts.hostname or "", headers):
                recorded = self._script.recorded_challenge(method, path)
                if recorded is None:
                    self._script.sent.append(Sent(method, request.url, headers, body, None))
                    return _response(request, 401, {"WWW-Authenticate": CHALLENGE}, b"")
                answer = recorded
            else:
                answer = self._script.pick(method, path, query)
            self._script.sent.append(Sent(method, request.url, headers, body, answer))
        out_headers = {
            k: (v[0] if isinstance(v, list) else str(v))
            for k, v in answer.headers.items()
            if k.lower() not in _DROPPED
        }
        payload = answer.body_bytes()
        if payload and not any(k.lower() == "content-type" for k in out_headers):
            out_headers["Content-Type"] = "application/json; charset=utf-8"
        return _response(request, answer.status, out_headers, payload)

    def close(self) -> None:
        return None


def _needs_challenge(host: str, headers: Mapping[str, str]) -> bool:
    has_token = any(k.lower() == "authorization" for k in headers)
    return host.endswith(".vault.azure.net") and not has_token


def _decode(body: Any) -> Any:
    if body is None:
        return None
    text = body.decode() if isinstance(body, bytes) else str(body)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _response(request: Any, status: int, headers: Mapping[str, str], payload: bytes) -> Any:
    response = requests.Response()
    # azure-core sets ``raw.enforce_content_length``: give it the urllib3 response it expects
    response.raw = HTTPResponse(
        body=io.BytesIO(payload), headers=dict(headers), status=status, preload_content=False
    )
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response._content = payload  # requests' own way to give a Response its bytes
    response.url = request.url
    response.request = request
    response.reason = requests.status_codes._codes.get(status, ("",))[0].upper()
    response.encoding = "utf-8"
    return response


class ReplayTransport(RequestsTransport):
    """A transport serving the given recorded interactions (see the module docstring).

    Parameters
    ----------
    answers:
        The interactions real Azure answered; order matters among answers to one request.
    """

    def __init__(self, answers: Iterable[Interaction]) -> None:
        self.script = Script(slots=[_Slot(a) for a in answers])
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", _ReplayAdapter(self.script))
        session.mount("http://", _ReplayAdapter(self.script))
        super().__init__(session=session, session_owner=False)

    @property
    def sent(self) -> list[Sent]:
        """Every request answered so far (the synthetic challenge included)."""
        return list(self.script.sent)

    def calls(self, method: str | None = None, contains: str = "") -> list[Sent]:
        """The answered requests (challenges left out), filtered by method and URL part."""
        return [
            s
            for s in self.script.sent
            if s.answer is not None
            and (method is None or s.method == method.upper())
            and contains.lower() in s.url.lower()
        ]

    def add(self, *answers: Interaction) -> None:
        """Script more answers (e.g. a recorded state after a write)."""
        with self.script.lock:
            self.script.slots.extend(_Slot(a) for a in answers)


def retarget(answer: Interaction, uri: str) -> Interaction:
    """The same recorded answer for another request URI (a recorded body, another name)."""
    return replace(answer, uri=uri)


class StaticCredential:
    """A token credential that hands out a fixed token (the replay checks no signature)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("replayed-token", 32503680000)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo("replayed-token", 32503680000)

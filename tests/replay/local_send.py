"""Send a recorded request to the local Azure, as the recording sent it to real Azure.

The fidelity tests put the local Azure into the state the recording describes, then replay the
recorded request here (same method, path, query and body; the host mapped to the local
listener) with a token from the local identity endpoint, and compare the answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from tests.replay.recordings import Interaction

if TYPE_CHECKING:
    from local.azure.api import LocalAzure

ARM_AUDIENCE = "https://management.azure.com"
KEYVAULT_AUDIENCE = "https://vault.azure.net"
EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"


@dataclass(frozen=True)
class LocalAnswer:
    """What the local Azure answered."""

    status: int
    headers: requests.structures.CaseInsensitiveDict[str]
    body: Any

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def token(azure: LocalAzure, resource: str) -> str:
    """An access token for ``resource`` from the local managed identity endpoint."""
    answer = requests.get(
        azure.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": resource},
        headers={"X-IDENTITY-HEADER": azure.identity_header},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def send_to_local(
    azure: LocalAzure,
    recorded: Interaction,
    *,
    vault: str | None = None,
    topic: str | None = None,
    body: Any = None,
    with_token: bool = True,
) -> LocalAnswer:
    """The local Azure's answer to the recorded request.

    ``vault`` names the local Key Vault whose listener stands for the recorded vault host;
    ``topic`` the local custom topic for an Event Grid publish; otherwise the request goes to
    local ARM. ``body`` replaces the recorded request body (recorders scrub some).
    """
    parts = urlsplit(recorded.uri)
    query = f"?{parts.query}" if parts.query else ""
    target = parts.path + query
    if vault is not None:
        base, audience = azure.vault_uri(vault).rstrip("/"), KEYVAULT_AUDIENCE
    elif topic is not None:
        base, audience = azure.topic_endpoint(topic).split("/eventgrid/")[0], EVENTGRID_AUDIENCE
        target = f"/eventgrid/topics/{topic}/api/events" + (
            f"?{parts.query}" if parts.query else ""
        )
    else:
        base, audience = azure.arm_url, ARM_AUDIENCE
    headers = {"Content-Type": "application/json"}
    if with_token:
        headers["Authorization"] = f"Bearer {token(azure, audience)}"
    payload = recorded.request_body if body is None else body
    data = None if payload is None else json.dumps(payload)
    answer = requests.request(
        recorded.method,
        base + target,
        data=data,
        headers=headers,
        verify=azure.ca_path,
        timeout=30,
    )
    try:
        parsed: Any = answer.json() if answer.content else None
    except ValueError:
        parsed = answer.text
    return LocalAnswer(answer.status_code, answer.headers, parsed)

"""A 200 that is not the resource asked for is transient (retried), never a dead letter.

A proxy, captive portal or half-configured private endpoint answers 200 with an HTML page;
an overloaded front door has been seen answering 200 with another body. Neither says anything
about the vault, so the step must be retried like a 503 — before the fix an HTML 200 became
``DecodeError`` → ``PermanentError("HTTP200")`` (dead-lettered at once) and a foreign JSON
body an ``AttributeError`` → permanent.

The answers are the recorded vault GET (``kv_mgmt_vault_get_no_softdelete_keys.yaml``) with its
body replaced: by an HTML page (``text/html``; no HTML answer was recorded — this is the
shape such a page has, said so here) and by the recorded role-assignment listing body (real
Azure JSON, not a vault).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.access.readers import SdkVaults
from shared.errors import TransientError
from shared.retry import classify
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction

VAULT_GET = "kv_mgmt_vault_get_no_softdelete_keys.yaml"
LISTING = "authz_role_assignments_list_subscription.yaml"
RECORDINGS = (VAULT_GET, LISTING)

ANSWER = interaction(VAULT_GET)
SUB = ANSWER.path.split("/")[2]
VAULT_ID = str(ANSWER.body["id"])
HTML = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Proxy</body></html>"


def _read(answer: object) -> BaseException:
    azure, transport = replay_clients([answer], settings=replay_settings([SUB]))  # type: ignore[list-item]
    with pytest.raises(Exception) as err:
        SdkVaults(azure).get_vault(VAULT_ID)
    assert len(transport.calls("GET")) == 1
    return err.value


def test_html_200_is_transient() -> None:
    html = replace(ANSWER, body=HTML, headers={**ANSWER.headers, "content-type": "text/html"})
    decision = classify(_read(html))
    assert isinstance(decision, TransientError), decision
    assert decision.code == "UnexpectedResponse"


def test_200_with_another_resource_is_transient() -> None:
    foreign = replace(ANSWER, body=interaction(LISTING).body)
    decision = classify(_read(foreign))
    assert isinstance(decision, TransientError), decision
    assert decision.code == "UnexpectedResponse"


def test_the_recorded_vault_still_reads() -> None:
    azure, _ = replay_clients([ANSWER], settings=replay_settings([SUB]))
    view = SdkVaults(azure).get_vault(VAULT_ID)
    assert view.name == ANSWER.body["name"]


def test_the_vault_view_carries_arms_spelling_of_the_id() -> None:
    # the request names the vault in another case; ARM's id (the recorded one) is what the
    # report — and any repair written from it — uses
    azure, _ = replay_clients([ANSWER], settings=replay_settings([SUB]))
    view = SdkVaults(azure).get_vault(
        VAULT_ID.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")
    )
    assert view.id == VAULT_ID

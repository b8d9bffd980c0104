"""Keyguard's own Azure client factory over a :class:`ReplayTransport`.

The settings are production's (``AzurePublic``: ARM at ``management.azure.com``, Key Vault's
challenge verified against ``*.vault.azure.net``), so the recorded URLs are requested as
recorded. Only the transport and the credential are the tests': the transport answers from the
recordings, the credential hands out a fixed token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.clients import AzureClients
from shared.config import Settings, load_settings
from tests.replay.recordings import Interaction
from tests.replay.transport import TENANT, ReplayTransport, StaticCredential

#: The subscription id the recorders scrubbed most recordings to.
RECORDED_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
BACKUP_PRINCIPAL = "11111111-2222-3333-4444-555555555555"


def replay_settings(
    subscriptions: Iterable[str] = (RECORDED_SUBSCRIPTION,), **overrides: str
) -> Settings:
    """Production settings for the recorded subscriptions (every vault in scope)."""
    env: dict[str, str] = {
        "KEYGUARD_TENANT_ID": TENANT,
        "KEYGUARD_SUBSCRIPTIONS": ",".join(subscriptions),
        "KEYGUARD_VAULTS": "*",
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": BACKUP_PRINCIPAL,
        "AzureWebJobsStorage__accountName": "keyguardreplay",
        "KEYGUARD_HTTP_RETRY_TOTAL": "0",
        "KEYGUARD_LRO_POLL_SECONDS": "0.01",
    }
    env.update(overrides)
    return load_settings(env)


def replay_clients(
    answers: Iterable[Interaction],
    *,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[AzureClients, ReplayTransport]:
    """An :class:`AzureClients` whose every call is answered from ``answers``."""
    transport = ReplayTransport(answers)
    settings = settings or replay_settings(**dict(env or {}))
    return AzureClients(settings, StaticCredential(), transport=transport), transport

"""Typed, immutable views over Event Grid events.

Each object keeps the fields Keyguard decides on, already normalised (stripped, canonical
event-type spelling, aware UTC datetimes), and the original dict as ``raw`` so nothing the
publisher sent is lost (quarantine records and logs can always show it). Build them with
:mod:`shared.events.parse`, never by hand from untrusted input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.events.catalog import ObjectType


class EventSchema(StrEnum):
    """Which envelope the event came in."""

    EVENT_GRID = "eventgrid"
    CLOUD_EVENTS = "cloudevents"


@dataclass(frozen=True, slots=True)
class KeyVaultEvent:
    """A Key Vault system-topic event (object new version / near expiry / expired, or an
    access-policy change).

    ``topic`` is the vault's ARM id as published; ``subject`` is the object name. For
    ``VaultAccessPolicyChanged`` the object fields may be None (its data is undocumented).
    ``vault_name`` is ``data.VaultName`` when present, else the topic's last segment — the
    scope check compares the two.
    """

    event_type: str
    id: str
    topic: str
    subject: str
    time: datetime
    subscription_id: str
    vault_name: str
    object_type: ObjectType | None
    object_name: str | None
    version: str | None
    #: ``data.Id``: the versioned object URL, e.g. ``https://kv.vault.azure.net/keys/k/0af1…``.
    object_id: str | None
    nbf: datetime | None
    exp: datetime | None
    schema: EventSchema
    raw: Mapping[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def vault_id(self) -> str:
        """The vault's ARM id (the topic without a trailing slash)."""
        return self.topic.rstrip("/")


@dataclass(frozen=True, slots=True)
class ArmEvent:
    """An Azure Resource Manager result event (``Microsoft.Resources.Resource*``).

    The event carries no resource body: consumers re-read ``resource_uri``.
    ``caller_principal_id`` is the object id of who made the call (claims ``oid`` /
    ``objectidentifier``, else the authorization evidence's ``principalId``).
    """

    event_type: str
    id: str
    topic: str
    subject: str
    time: datetime
    operation_name: str
    resource_uri: str
    subscription_id: str | None
    tenant_id: str | None
    correlation_id: str | None
    status: str | None
    http_method: str | None
    caller_principal_id: str | None
    resource_provider: str | None
    schema: EventSchema
    claims: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    raw: Mapping[str, Any] = field(repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """Any other event (including Event Grid's SubscriptionValidationEvent): acknowledged,
    counted and logged by the intake, never acted on."""

    event_type: str
    id: str
    topic: str | None
    subject: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False, hash=False)


#: What the parser returns.
Event = KeyVaultEvent | ArmEvent | UnknownEvent

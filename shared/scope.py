"""Scope check: only events about configured subscriptions and vaults may cause work.

Whoever can post to the webhook must not be able to spend backup quotas or make Keyguard
touch vaults it was not given. So before anything is planned, an event's envelope is checked
against the settings (:meth:`Settings.vault_in_scope`, :meth:`Settings.subscription_in_scope`)
and against itself (an event whose parts disagree is forged or broken):

* Key Vault events: the topic is an in-scope vault; ``data.VaultName`` names that vault; the
  object URL's path names the event's object type and name. The URL's *host* is not checked
  (the local Azure serves vaults on 127.0.0.1 ports); actions therefore resolve a vault's
  data-plane URI from ARM by vault id and never trust the event's host.
* ARM events: the topic is a configured subscription (or a resource group in one), the
  resource is under the topic, and ``data.subscriptionId`` / ``data.tenantId``, when present,
  agree with it and with the configured tenant; for an operation Keyguard acts on, the
  resource's type is the operation's (a ``virtualMachines/write`` naming a Recovery Services
  vault would otherwise refresh, and back up, that whole vault).

Ids must be ASCII (ARM's are; ``str.lower()`` would fold a Kelvin sign ``K`` into ``k`` and
match a configured vault). A refusal raises :class:`ScopeRefusal` (an
:class:`~shared.errors.OutOfScopeError`) whose ``reason`` is one of the ``REASON_*`` codes;
the intake records it in quarantine.

Which in-scope ARM events *matter* (a role assignment on some storage account, a write to an
unconfigured vault) is decided by planning with the helpers below; those are acknowledged
and counted, not quarantined, because Azure legitimately publishes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from shared.errors import OutOfScopeError
from shared.events.models import ArmEvent, Event, KeyVaultEvent

if TYPE_CHECKING:
    from shared.config import Settings

REASON_VAULT_NOT_IN_SCOPE: Final = "vault_not_in_scope"
REASON_VAULT_NAME_MISMATCH: Final = "vault_name_mismatch"
REASON_OBJECT_URL_MISMATCH: Final = "object_url_mismatch"
REASON_TOPIC_NOT_SUBSCRIPTION: Final = "topic_not_subscription"
REASON_SUBSCRIPTION_NOT_IN_SCOPE: Final = "subscription_not_in_scope"
REASON_RESOURCE_OUTSIDE_TOPIC: Final = "resource_outside_topic"
REASON_SUBSCRIPTION_MISMATCH: Final = "subscription_mismatch"
REASON_TENANT_MISMATCH: Final = "tenant_mismatch"
REASON_RESOURCE_TYPE_MISMATCH: Final = "resource_type_mismatch"
REASON_NOT_ASCII: Final = "id_not_ascii"

_ROLE_ASSIGNMENTS: Final = "/providers/microsoft.authorization/roleassignments/"


class ScopeRefusal(OutOfScopeError):
    """An event refused by the scope check; ``reason`` is a ``REASON_*`` code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_scope(event: Event, settings: Settings) -> None:
    """Refuse ``event`` unless it is about the configured scope.

    Unknown events pass (they cause no work). Raises :class:`ScopeRefusal`.
    """
    _check_ascii(event)
    if isinstance(event, KeyVaultEvent):
        _check_keyvault(event, settings)
    elif isinstance(event, ArmEvent):
        _check_arm(event, settings)


def _check_ascii(event: Event) -> None:
    """Refuse ids that are not ASCII: ARM ids are, and ``str.lower()`` would fold look-alikes
    (a Kelvin sign ``K`` becomes ``k``) into a configured vault's name."""
    if isinstance(event, KeyVaultEvent):
        ids = {
            "topic": event.topic,
            "subject": event.subject,
            "data.VaultName": event.vault_name,
            "data.Id": event.object_id or "",
        }
    elif isinstance(event, ArmEvent):
        ids = {
            "topic": event.topic,
            "subject": event.subject,
            "resourceUri": event.resource_uri,
            "data.subscriptionId": event.subscription_id or "",
            "data.tenantId": event.tenant_id or "",
        }
    else:
        return
    for field, value in ids.items():
        if not value.isascii():
            raise ScopeRefusal(REASON_NOT_ASCII, f"{field} {value!r} is not ASCII")


def _check_keyvault(event: KeyVaultEvent, settings: Settings) -> None:
    if not settings.vault_in_scope(event.vault_id):
        raise ScopeRefusal(REASON_VAULT_NOT_IN_SCOPE, f"vault {event.vault_id} is not configured")
    topic_name = event.vault_id.rsplit("/", 1)[-1]
    if event.vault_name.lower() != topic_name.lower():
        raise ScopeRefusal(
            REASON_VAULT_NAME_MISMATCH,
            f"data.VaultName {event.vault_name!r} is not the topic's vault {topic_name!r}",
        )
    if event.object_id is None or event.object_type is None:
        return  # VaultAccessPolicyChanged: data.Id is (at most) the vault URI
    parts = urlsplit(event.object_id)
    segments = [s for s in parts.path.split("/") if s]
    expected = f"{event.object_type.value}s" if event.object_type else None
    ok = (
        parts.scheme.lower() == "https"
        and len(segments) in (2, 3)
        and (expected is None or segments[0].lower() == expected)
        and (event.object_name is None or segments[1].lower() == event.object_name.lower())
    )
    if not ok:
        raise ScopeRefusal(
            REASON_OBJECT_URL_MISMATCH,
            f"data.Id path {parts.path!r} does not name {expected or 'an'} object "
            f"{event.object_name!r}",
        )


def _check_arm(event: ArmEvent, settings: Settings) -> None:
    topic = event.topic.lower()
    topic_sub = subscription_of(topic)
    if topic_sub is None or len(topic.split("/")) not in (3, 5):
        raise ScopeRefusal(
            REASON_TOPIC_NOT_SUBSCRIPTION, f"topic {event.topic!r} is not a subscription or RG"
        )
    if not settings.subscription_in_scope(topic_sub):
        raise ScopeRefusal(
            REASON_SUBSCRIPTION_NOT_IN_SCOPE, f"subscription {topic_sub} is not configured"
        )
    resource = event.resource_uri.lower()
    if not (resource == topic or resource.startswith(topic + "/")):
        raise ScopeRefusal(
            REASON_RESOURCE_OUTSIDE_TOPIC, f"resource is not under topic {event.topic!r}"
        )
    if event.subscription_id and event.subscription_id.lower() != topic_sub:
        raise ScopeRefusal(
            REASON_SUBSCRIPTION_MISMATCH,
            f"data.subscriptionId {event.subscription_id!r} is not the topic's",
        )
    if event.tenant_id and event.tenant_id.lower() != settings.tenant_id.lower():
        raise ScopeRefusal(
            REASON_TENANT_MISMATCH, f"data.tenantId {event.tenant_id!r} is not the configured"
        )
    from shared.events.catalog import ArmEffect, arm_operation

    operation = arm_operation(event.operation_name)
    written = resource_type_of(event.resource_uri) or ""
    expected = operation.resource_type.lower() if operation is not None else ""
    if operation is not None and operation.effect is not ArmEffect.REFRESH_INVENTORY:
        expected = "/".join(expected.split("/")[:2])  # a vault or role assignment, or below
        written = "/".join(written.split("/")[:2])
    if operation is not None and written != expected:
        raise ScopeRefusal(
            REASON_RESOURCE_TYPE_MISMATCH,
            f"operation {operation.name} names a resource of type {written or 'none'}",
        )


# --- helpers shared with planning and the sweep -------------------------------------------


def resource_type_of(resource_id: str) -> str | None:
    """The lower-cased ARM type of a resource id (``microsoft.compute/virtualmachines/
    extensions``), read after its last ``/providers/``; None when it names no resource."""
    head, sep, tail = resource_id.strip().rstrip("/").lower().rpartition("/providers/")
    if not sep or not head:
        return None
    parts = tail.split("/")
    if len(parts) < 3 or len(parts) % 2 == 0:
        return None
    return "/".join([parts[0], *parts[1::2]])


def subscription_of(resource_id: str) -> str | None:
    """The lower-cased subscription id of an ARM id (``/subscriptions/{id}/…``), or None."""
    parts = resource_id.strip().split("/")
    if len(parts) > 2 and parts[0] == "" and parts[1].lower() == "subscriptions" and parts[2]:
        return parts[2].lower()
    return None


def vault_of(resource_id: str) -> str | None:
    """The Key Vault ARM id that ``resource_id`` is or lies under (lower-cased), or None."""
    parts = resource_id.strip().rstrip("/").lower().split("/")
    if (
        len(parts) >= 9
        and parts[1] == "subscriptions"
        and parts[3] == "resourcegroups"
        and parts[5:8] == ["providers", "microsoft.keyvault", "vaults"]
        and parts[8]
    ):
        return "/".join(parts[:9])
    return None


def role_assignment_scope(resource_uri: str) -> str | None:
    """The scope a role assignment id is at (the part before its provider segment)."""
    lowered = resource_uri.strip().rstrip("/").lower()
    index = lowered.find(_ROLE_ASSIGNMENTS)
    if index < 0:
        return None
    return lowered[:index] or "/"


def is_container_scope(scope: str) -> bool:
    """True for a subscription (``/subscriptions/x``) or resource group scope."""
    parts = scope.strip().rstrip("/").lower().split("/")
    return subscription_of(scope) is not None and (
        len(parts) == 3 or (len(parts) == 5 and parts[3] == "resourcegroups")
    )


def configured_vaults_under(scope: str, settings: Settings) -> tuple[str, ...]:
    """The configured vault ids at or below a subscription / resource-group scope (sorted)."""
    prefix = scope.strip().rstrip("/").lower() + "/"
    return tuple(sorted(v for v in settings.vaults if v.startswith(prefix)))

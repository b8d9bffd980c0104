"""Foresight: warn before a needed key or secret version stops being what a restore expects.

Issue 15 item 2. Run by the sweep's pin pass of each needed object (once per object per sweep,
:func:`shared.sweep.from_sweep`), over what that pass already read — the version listing
(``expires_on`` per version) and the inventory's references — plus, for a key, one
``KeyClient.get_key_rotation_policy`` (the only extra call; counted in the step's summary).

Three findings, each an alert with what to do:

* ``PinnedVersionExpiresBeforeRecoveryPoint`` — a needed version's ``exp`` falls before the
  last recovery point needing it expires. A version in use now is also needed by the next
  backup, whose point lives the longest retention (:func:`longest_retention`): its horizon is
  at least ``now + longest retention``.
* ``NeededVersionNearExpiry`` — a needed version expires within
  ``KEYGUARD_EXPIRY_WARNING_DAYS`` (default 30).
* ``RotationPolicyShorterThanRetention`` — the key's rotation policy gives every version it
  creates an ``expiryTime`` shorter than the longest backup retention: each rotated version
  will expire before the recovery points taken with it. Once per key: the alert names the key
  alone (no version, no VM), so :attr:`shared.alerts.Alert.dedupe_key` keeps it one problem.
  Key Vault applies ``expiryTime`` when rotation creates a version; it does not change the
  versions that exist, whose ``exp`` the first two findings already read.

Already expired versions stay ``PinnedVersionExpired`` (the pin pass): Key Vault still unwraps
with an expired key and returns an expired secret, so Keyguard reports and never extends —
it never changes ``exp``; the remedies say how the owner can, if their own rules need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.alerts import Alert
from shared.inventory.retention import add_duration
from shared.inventory.store import Reference
from shared.pinning.decide import VersionState, days_until
from shared.pinning.execute import ObjectRef

#: ISO 8601 durations as Key Vault writes them in rotation policies (P90D, P2Y, P1Y6M, PT12H).
_DURATION: Final = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True)
class RotationPolicy:
    """What Keyguard reads of a key's rotation policy.

    ``expiry_time`` is the ISO 8601 duration new versions expire after (None: the policy sets
    none — also the service default Key Vault answers for a key that never had a policy, which
    has no ``id``: ``configured`` False). ``actions`` describe the lifetime actions
    (``Rotate after P30D``), for the alert text.
    """

    expiry_time: str | None
    configured: bool
    actions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the step's summary."""
        return {
            "expiry_time": self.expiry_time,
            "configured": self.configured,
            "actions": list(self.actions),
        }


def add_iso_duration(start: datetime, text: str) -> datetime | None:
    """``start`` plus an ISO 8601 duration (calendar years and months); None if unreadable."""
    match = _DURATION.match(text.strip().upper()) if text else None
    if match is None or not any(match.groupdict().values()):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    when = start
    for unit in ("years", "months"):
        if parts.get(unit):
            when = add_duration(when, parts[unit], unit)
    return when + timedelta(
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )


def read_rotation_policy(key_client: Any, name: str) -> RotationPolicy:
    """One ``KeyClient.get_key_rotation_policy`` as a :class:`RotationPolicy`.

    Real Key Vault answers 200 for a key that never had a policy (the default Notify P30D,
    ``attributes: null``, no ``id``; ``kv_key_rotation_policy_get_unset_default``).
    """
    policy = key_client.get_key_rotation_policy(name)
    actions = []
    for action in policy.lifetime_actions or ():
        kind = getattr(action.action, "value", action.action)
        if action.time_after_create:
            actions.append(f"{kind} after {action.time_after_create}")
        if action.time_before_expiry:
            actions.append(f"{kind} {action.time_before_expiry} before expiry")
    return RotationPolicy(
        expiry_time=str(policy.expires_in) if policy.expires_in else None,
        configured=bool(policy.id),
        actions=tuple(actions),
    )


def longest_retention(spans: Iterable[timedelta], on_demand_days: int) -> timedelta:
    """The longest time a recovery point is kept: the longest span (expiry minus time) of the
    points the inventory holds for the VMs concerned, and at least Keyguard's own on-demand
    retention (``KEYGUARD_BACKUP_RETENTION_DAYS``)."""
    return max([timedelta(days=on_demand_days), *spans])


@dataclass(frozen=True)
class _Horizon:
    """Until when one version is needed, and by what (for the alert)."""

    until: datetime
    by: str
    vms: tuple[str, ...]


def _horizons(
    refs: Iterable[Reference], now: datetime, retention: timedelta
) -> dict[str, _Horizon]:
    """Needed version (lower-case) → the latest moment a recovery point will need it."""
    out: dict[str, _Horizon] = {}
    for ref in refs:
        version = ref.version
        if version is None:
            continue
        vm = ref.vm_name or ref.vm_id
        if ref.point_id is None:
            until, by = (
                now + retention,
                f"the next backup of {vm} (in use; kept {retention.days} d)",
            )
        elif ref.expiry is not None and ref.expiry > now:
            until, by = ref.expiry, f"recovery point {vm}/{ref.point_id}"
        else:
            continue
        known = out.get(version)
        vms = tuple(sorted({vm, *(known.vms if known else ())}))
        if known is None or until > known.until:
            out[version] = _Horizon(until, by, vms)
        else:
            out[version] = _Horizon(known.until, known.by, vms)
    return out


def _day(when: datetime) -> str:
    return when.date().isoformat()


def foresee(
    obj: ObjectRef,
    versions: Sequence[VersionState],
    refs: Sequence[Reference],
    *,
    now: datetime,
    warning_days: int,
    retention: timedelta,
    policy: RotationPolicy | None,
    correlation: Mapping[str, Any],
) -> list[Alert]:
    """The foresight alerts for one object (pure; see the module docstring)."""
    horizons = _horizons(refs, now, retention)
    listed = {v.version.lower(): v for v in versions}
    before: list[tuple[VersionState, _Horizon]] = []
    near: list[tuple[VersionState, _Horizon]] = []
    for vid, horizon in sorted(horizons.items()):
        state = listed.get(vid)
        exp = state.expires_on if state else None
        if state is None or exp is None or exp <= now:  # never expires, or already reported
            continue
        if exp < horizon.until:
            before.append((state, horizon))
        if exp <= now + timedelta(days=warning_days):
            near.append((state, horizon))
    alerts = []
    if before:
        alerts.append(_expires_before(obj, before, now, correlation))
    if near:
        alerts.append(_near_expiry(obj, near, now, warning_days, correlation))
    if policy is not None and policy.expiry_time and horizons:
        lifetime = add_iso_duration(now, policy.expiry_time)
        if lifetime is not None and lifetime - now < retention:
            alerts.append(_policy_short(obj, policy, retention, correlation))
    return alerts


def _set_expiry(obj: ObjectRef, version: str, until: datetime) -> str:
    return (
        f"az keyvault {obj.object_type} set-attributes --vault-name {obj.vault_name} "
        f"--name {obj.name} --version {version} --expires {until.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )


def _expires_before(
    obj: ObjectRef,
    found: list[tuple[VersionState, _Horizon]],
    now: datetime,
    correlation: Mapping[str, Any],
) -> Alert:
    texts = [
        f"{s.version} expires {_day(s.expires_on or now)}, before {h.by} (needed until "
        f"{_day(h.until)})"
        for s, h in found
    ]
    commands = [_set_expiry(obj, s.version, h.until) for s, h in found]
    vms = sorted({vm for _s, h in found for vm in h.vms})
    return Alert(
        name="PinnedVersionExpiresBeforeRecoveryPoint",
        severity="medium",
        resource_ids=(*(obj.url(s.version) for s, _h in found), *vms),
        correlation=dict(correlation),
        problem=f"{obj.object_type} {obj.name} in Key Vault {obj.vault_name}: version(s) "
        + "; ".join(texts)
        + ". Key Vault still unwraps with an expired key and returns an expired secret, but a "
        "restore then depends on an expired version; Keyguard never changes exp",
        remedy="keep the versions enabled until the recovery points expire; if your rules need "
        "an unexpired version at restore, the key's owner can extend it: " + " ; ".join(commands),
        details={
            "versions": [
                {
                    "version": s.version,
                    "expires_on": (s.expires_on or now).isoformat(),
                    "needed_until": h.until.isoformat(),
                    "needed_by": h.by,
                }
                for s, h in found
            ],
            "vms": vms,
            "commands": commands,
        },
    )


def _near_expiry(
    obj: ObjectRef,
    found: list[tuple[VersionState, _Horizon]],
    now: datetime,
    warning_days: int,
    correlation: Mapping[str, Any],
) -> Alert:
    texts = []
    for s, _h in found:
        exp = s.expires_on or now
        texts.append(f"{s.version} in {days_until(exp, now)} day(s) ({_day(exp)})")
    vms = sorted({vm for _s, h in found for vm in h.vms})
    return Alert(
        name="NeededVersionNearExpiry",
        severity="low",
        resource_ids=(*(obj.url(s.version) for s, _h in found), *vms),
        correlation=dict(correlation),
        problem=f"{obj.object_type} {obj.name} in Key Vault {obj.vault_name}: needed version(s) "
        f"expire within {warning_days} days: " + "; ".join(texts) + f"; needed by {', '.join(vms)}",
        remedy="nothing breaks at expiry for restore (Key Vault still unwraps expired keys); "
        "keep the versions enabled and undeleted until their recovery points expire, and plan "
        "the rotation so new backups use a version with a later expiry",
        details={
            "versions": [
                {"version": s.version, "expires_on": (s.expires_on or now).isoformat()}
                for s, _h in found
            ],
            "warning_days": warning_days,
            "vms": vms,
        },
    )


def _policy_short(
    obj: ObjectRef, policy: RotationPolicy, retention: timedelta, correlation: Mapping[str, Any]
) -> Alert:
    days = retention.days
    return Alert(
        name="RotationPolicyShorterThanRetention",
        severity="low",
        resource_ids=(obj.url(),),  # the key alone: one problem per key, whatever the VMs
        correlation=dict(correlation),
        problem=f"key {obj.name} in Key Vault {obj.vault_name} has a rotation policy whose "
        f"expiryTime {policy.expiry_time} is shorter than the longest backup retention "
        f"({days} days): every version it rotates in expires before the recovery points taken "
        "with it",
        remedy=f"az keyvault key rotation-policy update --vault-name {obj.vault_name} "
        f"--name {obj.name} --value <policy.json with attributes.expiryTime of at least "
        f"P{days}D>, or accept restores that depend on expired versions (Key Vault still "
        "unwraps with them)",
        details={"policy": policy.to_dict(), "longest_retention_days": days},
    )

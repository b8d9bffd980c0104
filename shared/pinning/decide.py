"""Pinning decisions for one Key Vault object (a key or a secret): pure, no I/O.

A version is *needed* while a VM, disk or disk encryption set uses it, or while a retained
recovery point references it. Key Vault still unwraps with expired keys and returns expired
secrets, so what breaks an old restore is a version disabled, the object deleted or purged,
or access lost. For each needed version Keyguard therefore wants:

* the version enabled (a disabled one is reported; re-enabled only with remediation on);
* two tags saying why and until when it is pinned — ``keyguard-pinned-until`` (``in-use``, or
  the day the last recovery point needing it expires) and ``keyguard-pinned-by`` — written
  only when they change, other tags kept as they are;
* expired needed versions reported, never extended (extending ``exp`` changes nothing for
  unwrap and would hide the expiry from the owner).

A version that carries Keyguard's tags but is no longer needed is *released*: its two tags
are removed. Keyguard never disables, deletes or purges anything.

:func:`plan_object` turns the object's listed versions and the needs into a
:class:`PinPlan`; the pin action executes the plan (one update call per changed version) and
raises the alerts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

TAG_UNTIL = "keyguard-pinned-until"
TAG_BY = "keyguard-pinned-by"
IN_USE = "in-use"
#: Key Vault refuses to back up an object with more versions than this.
MAX_BACKUP_VERSIONS = 500
#: Key Vault tag values are limited to 256 characters.
MAX_TAG_VALUE = 256


@dataclass(frozen=True)
class VersionState:
    """What Key Vault says about one version (from a version listing)."""

    version: str
    enabled: bool
    expires_on: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The object's name as Key Vault spells it (names are case-insensitive; an event may
    #: spell one differently); None when the listing did not say.
    name: str | None = None


@dataclass(frozen=True)
class Need:
    """Why one version is needed.

    ``in_use_by`` names the resources (VMs, disks, DES) using it now; ``recovery_points``
    maps each VM name to the latest expiry of its retained recovery points taken with it.
    """

    in_use_by: frozenset[str] = frozenset()
    recovery_points: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def until(self) -> datetime | None:
        """None while in use; else the latest recovery point expiry."""
        if self.in_use_by or not self.recovery_points:
            return None
        return max(self.recovery_points.values())

    def merged(self, other: Need) -> Need:
        """Both reasons together (latest expiry per VM)."""
        points = dict(self.recovery_points)
        for vm, expiry in other.recovery_points.items():
            points[vm] = max(expiry, points.get(vm, expiry))
        return Need(self.in_use_by | other.in_use_by, points)


@dataclass(frozen=True)
class TagUpdate:
    """New full tag set for one version (Key Vault replaces tags as a whole)."""

    version: str
    tags: Mapping[str, str]
    enable: bool = False


@dataclass(frozen=True)
class PinPlan:
    """What to change and what to report for one object."""

    updates: tuple[TagUpdate, ...] = ()
    released: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    expired: tuple[str, ...] = ()
    too_many_versions: bool = False
    version_count: int = 0

    @property
    def writes(self) -> int:
        """How many update calls executing the plan costs."""
        return len(self.updates)


def pin_tags(need: Need) -> dict[str, str]:
    """Keyguard's two tags for a needed version (stable while the reasons are stable)."""
    until = need.until
    if until is None:
        until_text = IN_USE
    else:
        # Round up to the day: never announce a release earlier than the real expiry.
        day = until.astimezone(UTC).date()
        if until.astimezone(UTC).time() != datetime.min.time():
            day += timedelta(days=1)
        until_text = day.isoformat()
    if need.in_use_by:
        reason = "in use by " + _names(need.in_use_by)
    else:
        reason = "recovery points of " + _names(need.recovery_points)
    return {TAG_UNTIL: until_text, TAG_BY: reason[:MAX_TAG_VALUE]}


def _names(items: Iterable[str]) -> str:
    names = sorted(set(items))
    text = ", ".join(names)
    if len(text) <= MAX_TAG_VALUE - 40:
        return text
    return f"{len(names)} resources"


def plan_object(
    versions: Iterable[VersionState],
    needs: Mapping[str, Need],
    *,
    now: datetime,
    remediation: bool,
) -> PinPlan:
    """Decide the tag writes, re-enables and findings for one object.

    Parameters
    ----------
    versions:
        Every version Key Vault lists for the object.
    needs:
        Needed version id (lower-case) → why. Versions not listed here are not needed.
    now:
        The current time (for expiry).
    remediation:
        Whether a disabled needed version is re-enabled (else only reported).

    Returns
    -------
    PinPlan
        Updates only where something changes; a second plan over the state the first one
        produced has no updates.
    """
    listed = {v.version.lower(): v for v in versions}
    updates: list[TagUpdate] = []
    released: list[str] = []
    disabled: list[str] = []
    expired: list[str] = []
    for vid, state in sorted(listed.items()):
        need = needs.get(vid)
        if need is None:
            if TAG_UNTIL in state.tags or TAG_BY in state.tags:
                kept = {k: v for k, v in state.tags.items() if k not in (TAG_UNTIL, TAG_BY)}
                updates.append(TagUpdate(state.version, kept))
                released.append(state.version)
            continue
        wanted = {**state.tags, **pin_tags(need)}
        enable = not state.enabled and remediation
        if not state.enabled:
            disabled.append(state.version)
        if state.expires_on is not None and state.expires_on <= now:
            expired.append(state.version)
        if wanted != dict(state.tags) or enable:
            updates.append(TagUpdate(state.version, wanted, enable=enable))
    missing = sorted(v for v in needs if v not in listed)
    count = len(listed)
    return PinPlan(
        updates=tuple(updates),
        released=tuple(released),
        disabled=tuple(disabled),
        missing=tuple(missing),
        expired=tuple(expired),
        too_many_versions=count > MAX_BACKUP_VERSIONS,
        version_count=count,
    )


def days_until(when: datetime, now: datetime) -> int:
    """Whole days from ``now`` until ``when`` (rounded up; 0 when past)."""
    return max(0, math.ceil((when - now).total_seconds() / 86400))

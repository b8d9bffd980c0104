"""One pin pass over one Key Vault object: needs from the inventory, versions from Key Vault,
the plan from :func:`shared.pinning.decide.plan_object`, then the writes and the alerts.

Cost: one version listing; one update per version whose tags or enabled state must change
(none on a second pass over unchanged state); one ``get_deleted_*`` only when the object is
not listed. Alerts name the VMs and recovery points that need what is at risk.

Key Vault shows a just-deleted object neither live nor deleted for a while (recorded: 6 s for
a key, 17 s for a secret, 404 from ``deleted*/`` while the listing is already empty). A needed
object found in that state is not called missing at once: the pass raises a
:class:`~shared.errors.TransientError` (code :data:`NOT_VISIBLE_CODE`), the work queue retries
it, and only when the object is still neither live nor deleted
:data:`DELETE_VISIBILITY_SECONDS` after the first such attempt (``absent_for_seconds``, from
the item's history: :func:`absent_for_seconds`) is ``PinnedVersionMissing`` raised. A recovered
object that is not listed yet ends the pass with ``relist`` set: the caller runs it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.alerts import Alert
from shared.errors import TransientError
from shared.inventory.store import Reference
from shared.pinning.decide import Need, PinPlan, VersionState, plan_object
from shared.pinning.keyvault import ObjectStore

#: How long a needed object may be neither live nor deleted before it is called missing: the
#: recorded windows are 6-17 s; 60 s leaves room for a slower replica.
DELETE_VISIBILITY_SECONDS = 60.0
#: Error code of the retried attempt that found a needed object neither live nor deleted.
NOT_VISIBLE_CODE = "PinnedObjectNotVisible"


@dataclass(frozen=True)
class ObjectRef:
    """The object a pass is about, spelled as Azure returned it, never as an event spelled
    it: ``vault_id`` as ARM names the vault (``AzureClients.arm_vault_id``) and, after the
    listing, the object's name as Key Vault lists it (:meth:`as_listed`). An event naming
    ``KV-PROD``/``KEK-A`` for ``kv-prod``/``kek-a`` thus tags, escrows
    (``{vault}/{type}/{name}/{date}``) and alerts under the names the sweep uses.
    """

    vault_id: str  # Key Vault ARM id
    vault_uri: str
    object_type: str  # key | secret
    name: str

    @property
    def vault_name(self) -> str:
        return self.vault_id.rstrip("/").rsplit("/", 1)[-1]

    def as_listed(self, versions: Iterable[VersionState]) -> ObjectRef:
        """This object named as Key Vault listed it (the first listed name; unchanged when
        the listing carried none)."""
        listed = next((v.name for v in versions if v.name), None)
        return replace(self, name=listed) if listed and listed != self.name else self

    def url(self, version: str | None = None) -> str:
        base = f"{self.vault_uri.rstrip('/')}/{self.object_type}s/{self.name}"
        return f"{base}/{version}" if version else base


@dataclass
class PinOutcome:
    """What one pass found and did."""

    plan: PinPlan = field(default_factory=PinPlan)
    needed: dict[str, Need] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    writes: int = 0
    state: str = "listed"  # listed | deleted | recovered | missing | absent
    #: The needed versions found, for escrow and the summary.
    listed_versions: int = 0
    #: Recovered but not listed yet (Key Vault's visibility lag): run the pass again.
    relist: bool = False
    #: The object as Key Vault listed it (its spelling of the name), once listed.
    object: ObjectRef | None = None
    #: The versions Key Vault listed (what foresight reads ``expires_on`` from; no extra call).
    versions: list[VersionState] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        p = self.plan
        return {
            "state": self.state,
            "versions": p.version_count,
            "needed": sorted(self.needed),
            "writes": self.writes,
            "pinned": sorted(u.version for u in p.updates if u.version not in p.released),
            "released": list(p.released),
            "disabled": list(p.disabled),
            "re_enabled": sorted(u.version for u in p.updates if u.enable),
            "missing": list(p.missing),
            "expired": list(p.expired),
            "too_many_versions": p.too_many_versions,
            "alerts": [a.name for a in self.alerts],
            "relist": self.relist,
        }


def absent_for_seconds(history: Iterable[Any], now: datetime) -> float | None:
    """Seconds since the first earlier attempt that found the object neither live nor deleted
    (``history``: the work item's :class:`~shared.workitems.AttemptRecord` list, timed like
    ``now``); None when no attempt did."""
    firsts = []
    for record in history:
        if getattr(record, "code", None) != NOT_VISIBLE_CODE:
            continue
        try:
            firsts.append(datetime.fromisoformat(str(record.at)))
        except ValueError:
            continue
    if not firsts:
        return None
    return max(0.0, (now - min(firsts)).total_seconds())


def needs_from(
    refs: Iterable[Reference], now: datetime
) -> tuple[dict[str, Need], dict[str, list[Reference]]]:
    """Needed version → why, and version → the references (expired points left out)."""
    needs: dict[str, Need] = {}
    by_version: dict[str, list[Reference]] = {}
    for ref in refs:
        version = ref.version
        if version is None:
            continue
        if ref.point_id is None:
            need = Need(in_use_by=frozenset({ref.vm_name or ref.vm_id}))
        elif ref.expiry is None or ref.expiry > now:
            need = Need(recovery_points={ref.vm_name or ref.vm_id: ref.expiry or now})
        else:
            continue
        needs[version] = needs[version].merged(need) if version in needs else need
        by_version.setdefault(version, []).append(ref)
    return needs, by_version


def _who(refs: Sequence[Reference]) -> tuple[list[str], list[dict[str, str]], str]:
    vms = sorted({r.vm_name or r.vm_id for r in refs})
    points = sorted(
        ({"vm": r.vm_name or r.vm_id, "point_id": r.point_id} for r in refs if r.point_id),
        key=lambda d: (d["vm"], d["point_id"]),
    )
    in_use = sorted({r.vm_name for r in refs if r.point_id is None})
    parts = []
    if in_use:
        parts.append("in use by " + ", ".join(in_use))
    if points:
        ids = ", ".join(f"{p['vm']}/{p['point_id']}" for p in points)
        parts.append(f"needed by recovery points {ids}")
    return vms, points, "; ".join(parts) or "needed"


def pin_object(
    obj: ObjectRef,
    store: ObjectStore,
    refs: Iterable[Reference],
    *,
    now: datetime,
    remediation: bool,
    correlation: Mapping[str, Any] | None = None,
    absent_for_seconds: float | None = None,
) -> PinOutcome:
    """Pin (and release) the versions of one object; never disables, deletes or purges.

    ``absent_for_seconds``: how long ago an earlier attempt found this object neither live nor
    deleted (None: never). Until that reaches :data:`DELETE_VISIBILITY_SECONDS`, such a finding
    raises :class:`~shared.errors.TransientError` instead of ``PinnedVersionMissing``.
    """
    needs, by_version = needs_from(refs, now)
    out = PinOutcome(needed=needs)
    corr = dict(correlation or {})
    kind = obj.object_type
    versions = store.list_versions(obj.name)
    if versions is None:
        if not needs:
            out.state = "absent"
            return out
        all_refs = [r for rs in by_version.values() for r in rs]
        vms, points, why = _who(all_refs)
        if store.is_deleted(obj.name):
            command = f"az keyvault {kind} recover --vault-name {obj.vault_name} --name {obj.name}"
            out.state = "deleted"
            if remediation:
                store.recover(obj.name)
                out.writes += 1
                out.state = "recovered"
            out.alerts.append(
                Alert(
                    name="PinnedObjectDeleted",
                    severity="high" if remediation else "critical",
                    resource_ids=(obj.url(), *vms),
                    correlation=corr,
                    problem=f"{kind} {obj.name} in Key Vault {obj.vault_name} is soft-deleted but "
                    f"{why}" + ("; Keyguard recovered it" if remediation else ""),
                    remedy=command if not remediation else "none: recovered; find who deleted it",
                    details={
                        "vms": vms,
                        "recovery_points": points,
                        "recovered": remediation,
                        "versions": sorted(needs),
                    },
                )
            )
            if not remediation:
                return out
            relisted = store.list_versions(obj.name)
            if relisted is None:
                out.relist = True
                return out
            versions = relisted
        elif absent_for_seconds is None or absent_for_seconds < DELETE_VISIBILITY_SECONDS:
            waited = absent_for_seconds or 0.0
            raise TransientError(
                f"{kind} {obj.name} in Key Vault {obj.vault_name} is neither live nor deleted; "
                "a just-deleted object is not visible as deleted at once: checking again",
                code=NOT_VISIBLE_CODE,
                retry_after=max(1.0, DELETE_VISIBILITY_SECONDS - waited),
            )
        else:
            out.state = "missing"
            out.alerts.append(_missing_alert(obj, sorted(needs), by_version, corr))
            return out
    obj = out.object = obj.as_listed(versions)  # Key Vault's spelling for the writes
    plan = plan_object(versions, needs, now=now, remediation=remediation)
    out.plan = plan
    out.versions = list(versions)
    for update in plan.updates:
        store.update(obj.name, update.version, update.tags, update.enable)
        out.writes += 1
    out.alerts.extend(_findings(obj, plan, by_version, remediation, corr))
    return out


def _missing_alert(
    obj: ObjectRef, versions: list[str], by_version: Mapping[str, list[Reference]], corr: Any
) -> Alert:
    refs = [r for v in versions for r in by_version.get(v, [])]
    vms, points, why = _who(refs)
    return Alert(
        name="PinnedVersionMissing",
        severity="critical",
        resource_ids=(*(obj.url(v) for v in versions), *vms),
        correlation=corr,
        problem=f"{obj.object_type} {obj.name} version(s) {', '.join(versions)} in Key Vault "
        f"{obj.vault_name} are gone (purged or never there) but {why}",
        remedy=f"restore from escrow or the recovery point's backup data: az keyvault "
        f"{obj.object_type} restore --vault-name {obj.vault_name} --file <backup blob>",
        details={"vms": vms, "recovery_points": points, "versions": versions},
    )


def _findings(
    obj: ObjectRef,
    plan: PinPlan,
    by_version: Mapping[str, list[Reference]],
    remediation: bool,
    corr: Any,
) -> list[Alert]:
    alerts = []
    kind, vault = obj.object_type, obj.vault_name
    for version in plan.disabled:
        vms, points, why = _who(by_version.get(version.lower(), []))
        alerts.append(
            Alert(
                name="PinnedVersionDisabled",
                severity="high" if remediation else "critical",
                resource_ids=(obj.url(version), *vms),
                correlation=corr,
                problem=f"{kind} {obj.name} version {version} in Key Vault {vault} is disabled but "
                f"{why}" + ("; Keyguard re-enabled it" if remediation else ""),
                remedy="none: re-enabled; find who disabled it"
                if remediation
                else f"az keyvault {kind} set-attributes --vault-name {vault} --name {obj.name} "
                f"--version {version} --enabled true",
                details={"vms": vms, "recovery_points": points, "re_enabled": remediation},
            )
        )
    if plan.missing:
        alerts.append(_missing_alert(obj, list(plan.missing), by_version, corr))
    if plan.expired:
        refs = [r for v in plan.expired for r in by_version.get(v.lower(), [])]
        vms, points, why = _who(refs)
        alerts.append(
            Alert(
                name="PinnedVersionExpired",
                severity="low",
                resource_ids=(*(obj.url(v) for v in plan.expired), *vms),
                correlation=corr,
                problem=f"{kind} {obj.name} version(s) {', '.join(plan.expired)} in Key Vault "
                f"{vault} are past their expiry; still usable for restore, {why}",
                remedy="keep them enabled; do not delete or disable them until the recovery "
                "points expire (Key Vault unwraps with expired keys and returns expired secrets)",
                details={"vms": vms, "recovery_points": points, "versions": list(plan.expired)},
            )
        )
    if plan.too_many_versions:
        alerts.append(
            Alert(
                name="TooManyVersions",
                severity="medium",
                resource_ids=(obj.url(),),
                correlation=corr,
                problem=f"{kind} {obj.name} in Key Vault {vault} has {plan.version_count} "
                "versions; Key Vault cannot back up an object with more than 500",
                remedy="rotate to a new object name for future versions; keep this one until its "
                "recovery points expire",
                details={"versions": plan.version_count},
            )
        )
    return alerts

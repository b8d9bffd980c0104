"""Key Vault's management plane as real ARM answers it, served to Keyguard's access check and sweep.

* ``kv_mgmt_vault_get_no_softdelete_keys.yaml``: a vault GET (api 2019-09-01, 2022) whose
  properties hold **no** ``enableSoftDelete``, ``softDeleteRetentionInDays``,
  ``enablePurgeProtection`` or ``enableRbacAuthorization`` key, one access policy for another
  principal. Keyguard's verify step (its own ``VerifyAccessAction`` over its SDK readers) must
  read that as: access-policy model (RBAC absent = off, the API's default), Backup missing every
  permission, purge protection off (its default) — and soft delete **unknown**, not off: Azure
  has soft delete on by default since 2020 and enforced on every vault since February 2025
  (azure-facts §6.3), so no "soft delete is off" finding or wording.
* ``kv_mgmt_vaults_list_paged_empty_pages.yaml``: ``vaults.list_by_subscription`` in four pages,
  the first and third **empty but carrying a nextLink**, the last ``{"value": []}`` without one.
  The ``KEYGUARD_VAULTS=*`` sweep must follow every link and plan one verification per vault.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared import sweep
from shared.actions.base import ActionContext
from shared.actions.verify_access import VerifyAccessAction
from shared.planning import verify_item
from shared.workitems import WorkItem, WorkKind
from tests.replay.harness import BACKUP_PRINCIPAL, replay_clients, replay_settings
from tests.replay.recordings import Interaction, interaction, interactions
from tests.replay.transport import retarget

VAULT_GET = "kv_mgmt_vault_get_no_softdelete_keys.yaml"
VAULTS_LIST = "kv_mgmt_vaults_list_paged_empty_pages.yaml"
RECORDINGS = (VAULT_GET, VAULTS_LIST)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ANSWER = interaction(VAULT_GET)
SUB = ANSWER.path.split("/")[2]
VAULT_ID = str(ANSWER.body["id"])
VAULT_TENANT = str(ANSWER.body["properties"]["tenantId"])


# -- the vault GET without soft-delete, purge-protection and RBAC keys ---------------------------


def _verify(**env: str) -> tuple[Any, Any]:
    settings = replay_settings([SUB], KEYGUARD_TENANT_ID=VAULT_TENANT, **env)
    azure, transport = replay_clients([ANSWER], settings=settings)
    ctx = ActionContext(settings=settings, azure=azure, storage=None, now=lambda: NOW)  # type: ignore[arg-type]
    item = verify_item(VAULT_ID, bucket="b", reasons=("event-1",))
    return VerifyAccessAction().run(item, ctx), transport


def test_the_recorded_vault_has_none_of_the_hygiene_keys() -> None:
    props = ANSWER.body["properties"]
    for key in (
        "enableSoftDelete",
        "softDeleteRetentionInDays",
        "enablePurgeProtection",
        "enableRbacAuthorization",
    ):
        assert key not in props


def test_access_check_reads_soft_delete_as_unknown_and_purge_protection_as_off() -> None:
    result, transport = _verify()
    summary = result.summary
    # one vault GET and nothing else: access policies (no RBAC key = off), no role listing
    assert [s.method for s in transport.calls()] == ["GET"]
    assert summary["permission_model"] == "accessPolicies"
    hygiene = summary["hygiene"]
    assert hygiene["soft_delete"] is None  # unknown: Azure enforces soft delete since 2025
    assert hygiene["purge_protection"] is False  # absent = off, its default
    # no SoftDeleteDisabled; enabledForDiskEncryption is recorded false (issue 14 item 4)
    assert hygiene["findings"] == ["PurgeProtectionDisabled", "DiskEncryptionDisabled"]
    assert hygiene["retention_days"] == 90 and hygiene["retention_reported"] is False


def test_access_check_alerts_backup_missing_and_unprotected_without_claiming_soft_delete_off() -> (
    None
):
    result, transport = _verify()
    by_name = {a.name: a for a in result.alerts}
    # the firewall denies by default but lets trusted services through: no firewall alert
    assert set(by_name) == {
        "BackupAccessMissing",
        "VaultUnprotected",
        "VaultDiskEncryptionDisabled",
    }
    missing = by_name["BackupAccessMissing"]
    # the one recorded policy is another principal's: Backup lacks every key and secret right
    assert BACKUP_PRINCIPAL in missing.problem and "access policies" in missing.problem
    assert missing.remedy.startswith(
        f"az keyvault set-policy --name {ANSWER.body['name']} --object-id {BACKUP_PRINCIPAL}"
    )
    assert "--key-permissions" in missing.remedy and "--secret-permissions" in missing.remedy
    unprotected = by_name["VaultUnprotected"]
    assert "soft delete" not in unprotected.problem
    assert "90-day retention" in unprotected.problem
    assert [s.method for s in transport.calls()] == ["GET"]  # no repair without remediation


# -- KEYGUARD_VAULTS=*: the paged vault listing with empty pages ---------------------------------


def _listing_pages() -> tuple[str, list[Interaction]]:
    """The recorded pages, asked for under the subscription the vault ids and nextLinks name.

    The recorder scrubbed the request URIs' subscription (ea42f556-...) but not the one in the
    nextLinks and vault ids (2300cc55-...); real ARM answers a subscription's listing with ids
    of that subscription, so the requests are put back under it."""
    pages = interactions(VAULTS_LIST)
    real = str(pages[1].body["value"][0]["id"]).split("/")[2]
    scrubbed = pages[0].path.split("/")[2]
    return real, [
        retarget(p, p.uri.replace(scrubbed, real).replace(scrubbed.upper(), real)) for p in pages
    ]


class _Queue:
    """The work queue (Keyguard's own port): keeps what the sweep enqueued."""

    def __init__(self) -> None:
        self.items: list[WorkItem] = []

    def enqueue_many(self, items: Any) -> None:
        self.items.extend(items)


def test_all_vaults_sweep_follows_next_links_through_empty_pages() -> None:
    real, pages = _listing_pages()
    assert [len(p.body["value"]) for p in pages] == [0, 2, 0, 0]
    assert [bool(p.body.get("nextLink")) for p in pages] == [True, True, True, False]
    settings = replay_settings([real])
    azure, transport = replay_clients(pages, settings=settings)
    queue = _Queue()
    deps = sweep.SweepDeps(
        settings=settings,
        work_queue=queue,
        list_vaults=sweep.arm_vault_lister(azure),
        planners=(sweep.plan_verify_vaults,),
    )
    result = sweep.run_sweep(deps, now=NOW)

    recorded_ids = sorted(str(v["id"]) for v in pages[1].body["value"])
    assert sorted(result.vaults) == recorded_ids
    assert sorted(i.target for i in queue.items) == recorded_ids
    assert {i.kind for i in queue.items} == {WorkKind.VERIFY_ACCESS}
    # all four pages were asked for, each by the $skiptoken its predecessor's nextLink named
    asked = transport.calls("GET")
    assert [s.answer.index for s in asked if s.answer] == [0, 1, 2, 3]
    assert "$skiptoken" not in asked[0].url
    for before, after in zip(pages, asked[1:], strict=False):
        token = str(before.body["nextLink"]).split("$skiptoken=", 1)[1]
        assert parse_qs(urlsplit(after.url).query)["$skiptoken"] == [token]

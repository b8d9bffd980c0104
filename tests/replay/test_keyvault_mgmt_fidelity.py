"""The local Azure's Key Vault management plane (ARM) against recorded real vault traffic.

* ``kv_mgmt_vault_get_no_softdelete_keys.yaml``: a vault GET. The local Azure is given the
  recorded vault (subscription, group, name, tenant, its one access policy) and answers the
  recorded request; status, ``Content-Type`` and the body's shape must agree. The recorded vault
  reports no ``enableSoftDelete``/``softDeleteRetentionInDays``/``enablePurgeProtection``/
  ``enableRbacAuthorization`` (an old vault read with api 2019-09-01); the local Azure reports
  them (extra keys: the shape check does not count them) — what Keyguard concludes from either
  is tested in ``test_keyvault_mgmt_replay.py``. Its ``networkAcls`` (Deny, trusted services
  allowed, eight IP rules) is given to the local Azure and answered as recorded.
* ``kv_mgmt_vault_network_rule_get_put.yaml``: the CLI's read-modify-write of a firewalled RBAC
  vault (api 2023-02-01). The local Azure answers the GET with the recorded ``networkAcls``
  and the PUT (the whole set, one IP rule left) by replacing the firewall and echoing it; the
  next GET shows it. A vault without a firewall shows no ``networkAcls`` at all.
* ``kv_mgmt_vaults_list_paged_empty_pages.yaml``: list by subscription answers in four pages,
  the first and third empty with a ``nextLink``, the last ``{"value": []}`` without one; the
  local Azure pages the same way, so Keyguard's pager is exercised locally as in Azure.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.replay.local_send import LocalAnswer, send_to_local
from tests.replay.recordings import Interaction, interaction, interactions
from tests.replay.shapes import shape_diff
from tests.replay.transport import retarget

VAULT_GET = "kv_mgmt_vault_get_no_softdelete_keys.yaml"
VAULTS_LIST = "kv_mgmt_vaults_list_paged_empty_pages.yaml"
NETWORK_RULE = "kv_mgmt_vault_network_rule_get_put.yaml"
RECORDINGS = (VAULT_GET, VAULTS_LIST, NETWORK_RULE)

#: not emulated: who last changed the vault (README, Key Vault → Fidelity)
NO_SYSTEM_DATA = ("$.systemData",)
KEYGUARD = "5a1c7e0e-0000-4000-8000-00000000a001"


@pytest.fixture
def azure(local_azure: Any, azure_env: dict[str, str]) -> Any:
    return local_azure


def _same(recorded: Interaction, local: LocalAnswer, *, ignore: tuple[str, ...] = ()) -> None:
    assert local.status == recorded.status, (recorded.source, recorded.index, local.body)
    recorded_type = recorded.header("content-type") or ""
    assert (local.header("content-type") or "").startswith(recorded_type.split(";")[0])
    assert shape_diff(recorded.body, local.body, ignore=ignore) == []


def _scenario_vault(body: dict[str, Any], subscription: str) -> dict[str, Any]:
    """The recorded vault as a scenario vault (its access policies' principals by object id)."""
    props = body["properties"]
    group = str(body["id"]).split("/")[4]
    return {
        "name": body["name"],
        "subscription": subscription,
        "resource_group": group,
        "location": body["location"],
        "tags": body["tags"],
        "sku": props["sku"]["name"],
        "retention_days": props.get("softDeleteRetentionInDays", 90),
        "rbac": bool(props.get("enableRbacAuthorization", False)),
        "enabled_for_disk_encryption": props.get("enabledForDiskEncryption", False),
        "enabled_for_deployment": props.get("enabledForDeployment", False),
        "enabled_for_template_deployment": props.get("enabledForTemplateDeployment", False),
        **({"network_acls": props["networkAcls"]} if "networkAcls" in props else {}),
        "access_policies": [
            {"object_id": p["objectId"], "tenant_id": p["tenantId"], **p["permissions"]}
            for p in props["accessPolicies"]
        ],
    }


def test_vault_get_answers_the_recorded_shape(azure: Any) -> None:
    recorded = interaction(VAULT_GET)
    sub = recorded.path.split("/")[2]
    tenant = recorded.body["properties"]["tenantId"]
    azure.admin.load_scenario(
        {
            "tenant_id": tenant,
            "subscriptions": [sub],
            "principals": {"keyguard": KEYGUARD},
            "key_vaults": [_scenario_vault(recorded.body, sub)],
        }
    )
    answer = send_to_local(azure, recorded)
    _same(recorded, answer)
    assert answer.body["properties"]["networkAcls"] == recorded.body["properties"]["networkAcls"]
    assert answer.body["id"] == recorded.body["id"]
    (policy,) = answer.body["properties"]["accessPolicies"]
    assert policy["objectId"] == recorded.body["properties"]["accessPolicies"][0]["objectId"]
    assert policy["tenantId"] == tenant
    # the local Azure reports what the recorded (old) vault left out: soft delete on, as Azure
    # enforces it; purge protection left out until it is switched on, as Azure does
    assert answer.body["properties"]["enableSoftDelete"] is True
    assert "enablePurgeProtection" not in answer.body["properties"]


def test_vault_list_by_subscription_pages_through_empty_pages_with_next_links(
    azure: Any,
) -> None:
    pages = interactions(VAULTS_LIST)
    recorded_vaults = pages[1].body["value"]
    sub = str(recorded_vaults[0]["id"]).split("/")[2]  # the unscrubbed subscription
    azure.admin.load_scenario(
        {
            "tenant_id": recorded_vaults[0]["properties"]["tenantId"],
            "subscriptions": [sub],
            "principals": {"keyguard": KEYGUARD},
            "key_vaults": [_scenario_vault(v, sub) for v in recorded_vaults],
        }
    )
    first = retarget(pages[0], pages[0].uri.replace(pages[0].path.split("/")[2], sub))
    answers = [send_to_local(azure, first)]
    while answers[-1].body.get("nextLink"):
        link = urlsplit(str(answers[-1].body["nextLink"]))
        assert link.path.split("/")[2] == sub
        query = parse_qs(link.query)
        assert query["api-version"] and query["$skiptoken"]  # as recorded: both in the link
        answers.append(send_to_local(azure, retarget(pages[0], answers[-1].body["nextLink"])))
        assert len(answers) <= len(pages)
    assert len(answers) == len(pages)
    for recorded, local in zip(pages, answers, strict=True):
        _same(recorded, local)
        assert len(local.body["value"]) == len(recorded.body["value"])
        assert ("nextLink" in local.body) == ("nextLink" in recorded.body)
    assert sorted(v["id"] for v in answers[1].body["value"]) == sorted(
        v["id"] for v in recorded_vaults
    )


def test_firewalled_vault_get_then_put_answer_as_recorded(azure: Any) -> None:
    get, put = interactions(NETWORK_RULE)
    sub = get.path.split("/")[2]
    azure.admin.load_scenario(
        {
            "tenant_id": get.body["properties"]["tenantId"],
            "subscriptions": [sub],
            "principals": {"keyguard": KEYGUARD},
            "key_vaults": [_scenario_vault(get.body, sub)],
        }
    )
    answer = send_to_local(azure, get)
    _same(get, answer, ignore=NO_SYSTEM_DATA)
    assert answer.body["properties"]["networkAcls"] == get.body["properties"]["networkAcls"]
    assert answer.body["properties"]["enableRbacAuthorization"] is True
    # the PUT replaces the whole firewall (one IP rule left) and the answer echoes it
    written = send_to_local(azure, put, body=put.request_body)
    _same(put, written, ignore=NO_SYSTEM_DATA)
    assert written.body["properties"]["networkAcls"] == put.body["properties"]["networkAcls"]
    again = send_to_local(azure, get)
    assert again.body["properties"]["networkAcls"] == put.body["properties"]["networkAcls"]


def test_vault_without_a_firewall_shows_no_network_acls(azure: Any) -> None:
    get = interactions(NETWORK_RULE)[0]
    sub = get.path.split("/")[2]
    vault = _scenario_vault(get.body, sub)
    del vault["network_acls"]
    azure.admin.load_scenario(
        {
            "tenant_id": get.body["properties"]["tenantId"],
            "subscriptions": [sub],
            "principals": {"keyguard": KEYGUARD},
            "key_vaults": [vault],
        }
    )
    answer = send_to_local(azure, get)
    assert answer.status == 200 and "networkAcls" not in answer.body["properties"]

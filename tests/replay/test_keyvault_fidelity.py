"""The local Azure's Key Vault data plane against recorded real Key Vault traffic.

For each recorded Key Vault interaction: the local Azure is put in the state the recording
describes (a vault ``vaultname`` / ``keyvault_name`` holding the recorded names), the recorded
request is sent to it (:func:`~tests.replay.local_send.send_to_local`), and status, the headers
Keyguard reads (``WWW-Authenticate`` on the challenge, ``Content-Type``) and the body's keys and
value types (:func:`~tests.replay.shapes.shape_diff`) are compared with the recording, plus the
values Keyguard's behaviour depends on (empty listings, error codes, paging links, order).

Divergences left (see ``local/azure/README.md``, Key Vault → Fidelity): the 2020 wording of the
disabled-deleted-secret 403 (``AccessDenied`` "not permitted on this object"; the emulator
answers the 2021 re-recording's ``SecretDisabled``), and the lengths of the just-deleted window
(6 s key, 17 s secret recorded; the emulator uses 17 s for both).
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from local.azure.keyvault_state import DELETED_VISIBLE_AFTER_SECONDS
from tests.replay.local_send import LocalAnswer, send_to_local
from tests.replay.recordings import Interaction, interaction, interactions, raw
from tests.replay.shapes import shape_diff
from tests.replay.transport import retarget

KEY_EMPTY = "kv_key_list_versions_nonexistent_200_empty.yaml"
SECRET_EMPTY = "kv_secret_list_versions_nonexistent_200_empty.yaml"
PAGED = "kv_key_list_versions_paged.yaml"
DELETED_PAGES = "kv_deleted_keys_list_empty_pages.yaml"
KEY_DELETE = "kv_key_delete_then_get_deleted.yaml"
KEY_RECOVER = "kv_key_recover_deleted.yaml"
SECRET_DISABLED_DELETE = "kv_secret_disabled_update_delete_get_deleted.yaml"
SECRET_GET_DISABLED = "kv_secret_get_disabled_403.yaml"
DELETED_SECRETS = "kv_deleted_secrets_list_one_item.yaml"
RECORDINGS = (
    DELETED_SECRETS,
    KEY_EMPTY,
    SECRET_EMPTY,
    PAGED,
    DELETED_PAGES,
    KEY_DELETE,
    KEY_RECOVER,
    SECRET_DISABLED_DELETE,
    SECRET_GET_DISABLED,
)

VAULT = "vaultname"
SUB = "00000000-1111-2222-3333-444444444444"
PAGED_KEY = "livekvtesttestKey965211db"
DELETED_KEY = "livekvtestkey02d9d0f3d"


def _vault(**objects: Any) -> dict[str, Any]:
    return {
        "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "subscriptions": [SUB],
        "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
        "key_vaults": [
            {
                "name": VAULT,
                "retention_days": 7,  # the recorded vaults: CustomizedRecoverable+Purgeable, 7
                "access_policies": [{"principal": "keyguard", "keys": ["all"], "secrets": ["all"]}],
                **objects,
            }
        ],
    }


@pytest.fixture
def azure(local_azure: Any, azure_env: dict[str, str]) -> Any:
    return local_azure


def _same(recorded: Interaction, local: LocalAnswer, *, ignore: tuple[str, ...] = ()) -> None:
    """Status, Content-Type and body shape as recorded."""
    assert local.status == recorded.status, (recorded.source, recorded.index, local.body)
    recorded_type = recorded.header("content-type")
    if recorded_type:
        assert (local.header("content-type") or "").startswith(recorded_type.split(";")[0])
    if isinstance(recorded.body, dict):
        assert shape_diff(recorded.body, local.body, ignore=ignore) == []


def _local_uri(recorded: Interaction, uri: str) -> Interaction:
    """The recorded interaction sent to another URI (a local nextLink, a scrubbed query)."""
    return retarget(recorded, uri)


# -- list versions of a name that does not exist: 200-empty -------------------------------------


@pytest.mark.parametrize("recording", [KEY_EMPTY, SECRET_EMPTY])
def test_listing_versions_of_a_missing_name_is_200_empty_after_the_challenge(
    azure: Any, recording: str
) -> None:
    azure.admin.load_scenario(_vault())
    challenge, listed = interactions(recording)
    answer = send_to_local(azure, challenge, vault=VAULT, with_token=False)
    assert answer.status == 401 == challenge.status
    recorded_header = challenge.header("WWW-Authenticate") or ""
    local_header = answer.header("WWW-Authenticate") or ""
    # Keyguard's challenge check reads the resource; the authority names the tenant
    assert 'resource="https://vault.azure.net"' in recorded_header
    assert 'resource="https://vault.azure.net"' in local_header
    assert local_header.startswith("Bearer authorization=")
    assert shape_diff(challenge.body, answer.body) == []
    answer = send_to_local(azure, listed, vault=VAULT)
    _same(listed, answer)
    assert answer.body == {"value": [], "nextLink": None} == listed.body


def test_listing_versions_of_a_soft_deleted_name_is_200_empty_too(azure: Any) -> None:
    azure.admin.load_scenario(
        _vault(keys=[{"name": DELETED_KEY, "deleted": True, "versions": [{}]}])
    )
    listed = _local_uri(interaction(KEY_EMPTY, -1), f"https://x/keys/{DELETED_KEY}/versions")
    answer = send_to_local(azure, listed, vault=VAULT)
    assert (answer.status, answer.body) == (200, {"value": [], "nextLink": None})


# -- paging: order by version id, opaque $skiptoken, :port and maxresults in nextLink ------------


def test_paged_version_listing_is_ordered_by_version_id_with_an_opaque_next_link(
    azure: Any,
) -> None:
    first, second = interactions(PAGED)
    recorded_items = [i for page in (first, second) for i in page.body["value"]]
    # the recorded versions, created in the recorded (non-lexicographic) order
    created = sorted(recorded_items, key=lambda i: i["attributes"]["created"])
    versions = [
        {"id": i["kid"].rsplit("/", 1)[1], "created": i["attributes"]["created"]} for i in created
    ]
    azure.admin.load_scenario(_vault(keys=[{"name": PAGED_KEY, "versions": versions}]))
    answer = send_to_local(azure, first, vault=VAULT)
    _same(first, answer)
    assert [i["kid"].rsplit("/", 1)[1] for i in answer.body["value"]] == [
        i["kid"].rsplit("/", 1)[1] for i in first.body["value"]
    ]
    recorded_link, local_link = urlsplit(first.body["nextLink"]), urlsplit(answer.body["nextLink"])
    assert recorded_link.port == 443 and local_link.port is not None  # the port spelled out
    for link in (recorded_link, local_link):
        query = parse_qs(link.query)
        assert query["maxresults"] == ["6"] and "api-version" in query
        assert not query["$skiptoken"][0].isdigit()  # opaque
    assert local_link.path == recorded_link.path
    rest = send_to_local(azure, _local_uri(second, answer.body["nextLink"]), vault=VAULT)
    _same(second, rest)
    assert rest.body["value"][0]["kid"].rsplit("/", 1)[1] == "fd411456cb624e70b5c58eb20eeb94db"
    assert rest.body["nextLink"] is None


def test_deleted_listing_ends_with_an_empty_page_that_still_has_a_next_link(azure: Any) -> None:
    azure.admin.load_scenario(_vault())
    with_link, final = interactions(DELETED_PAGES)
    start = _local_uri(with_link, "https://vaultname.vault.azure.net/deletedkeys?api-version=7.3")
    answer = send_to_local(azure, start, vault=VAULT)
    _same(with_link, answer)
    assert answer.body["value"] == [] and answer.body["nextLink"]
    assert ":443/" in with_link.body["nextLink"] and "$skiptoken=" in answer.body["nextLink"]
    last = send_to_local(azure, _local_uri(final, answer.body["nextLink"]), vault=VAULT)
    _same(final, last)
    assert last.body == {"value": [], "nextLink": None} == final.body


# -- delete, the just-deleted window, recover ----------------------------------------------------


def test_delete_then_get_deleted_is_404_for_the_window_then_200(azure: Any) -> None:
    delete, not_yet, visible = interactions(KEY_DELETE)
    azure.admin.load_scenario(_vault(keys=[{"name": DELETED_KEY, "versions": [{}]}]))
    _same(delete, send_to_local(azure, delete, vault=VAULT))
    answer = send_to_local(azure, not_yet, vault=VAULT)
    _same(not_yet, answer)
    assert answer.body["error"]["code"] == not_yet.body["error"]["code"] == "KeyNotFound"
    assert answer.body["error"]["message"] == not_yet.body["error"]["message"]
    azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    _same(visible, send_to_local(azure, visible, vault=VAULT))


def test_recover_answers_the_key_bundle(azure: Any) -> None:
    recover = interaction(KEY_RECOVER)
    azure.admin.load_scenario(
        _vault(keys=[{"name": DELETED_KEY, "deleted": True, "versions": [{}]}])
    )
    answer = send_to_local(azure, recover, vault=VAULT)
    _same(recover, answer)
    assert "recoveryId" not in answer.body and "deletedDate" not in answer.body


# -- a secret created disabled: update, delete, and the 403 from deletedsecrets/ -----------------


def test_disabled_secret_update_delete_then_get_deleted_403(azure: Any) -> None:
    put, patch, delete, not_yet, forbidden_2020 = interactions(SECRET_DISABLED_DELETE)
    azure.admin.load_scenario(_vault())
    _same(put, send_to_local(azure, put, vault=VAULT))
    _same(patch, send_to_local(azure, patch, vault=VAULT))
    _same(delete, send_to_local(azure, delete, vault=VAULT))
    answer = send_to_local(azure, not_yet, vault=VAULT)
    _same(not_yet, answer)
    assert answer.body["error"]["code"] == "SecretNotFound"
    azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    answer = send_to_local(azure, forbidden_2020, vault=VAULT)
    _same(forbidden_2020, answer)
    # the emulator answers the 2021 re-recording's wording (the 2020 one: AccessDenied,
    # "Operation get is not permitted on this object."); Keyguard reads both as "deleted"
    recorded_2021 = raw(SECRET_DISABLED_DELETE)["sequence"][-1]["response"]
    assert answer.body == recorded_2021["body"]


def test_get_of_a_disabled_secret_is_403_secret_disabled(azure: Any) -> None:
    recorded = interaction(SECRET_GET_DISABLED)
    name = recorded.path.split("/")[2]
    azure.admin.load_scenario(_vault(secrets=[{"name": name, "versions": [{"enabled": False}]}]))
    answer = send_to_local(azure, recorded, vault=VAULT)
    _same(recorded, answer)
    assert answer.body == recorded.body


def test_deleted_secret_listing_is_one_page_with_a_null_next_link(azure: Any) -> None:
    recorded = interaction(DELETED_SECRETS)
    (item,) = recorded.body["value"]
    name = item["id"].rsplit("/", 1)[1]
    version = {"content_type": "text/plain", "tags": {"foo": "updated tag"}, "expires": 2527401600}
    azure.admin.load_scenario(
        _vault(secrets=[{"name": name, "deleted": True, "versions": [version]}])
    )
    answer = send_to_local(azure, recorded, vault=VAULT)
    _same(recorded, answer)
    assert answer.body["nextLink"] is None and len(answer.body["value"]) == 1
    assert "value" not in answer.body["value"][0]  # no secret value in a listing
    assert answer.body["value"][0]["id"].endswith(f"/secrets/{name}")  # id without version


# -- backup, rotation policies, a PATCH on an RBAC vault, the keys/secrets listings --------------

BACKUP = "kv_key_backup_200_blob_shortened.yaml"
ROTATION_SET = "kv_key_rotation_policy_get.yaml"
ROTATION_UNSET = "kv_key_rotation_policy_get_unset_default.yaml"
PATCH_RBAC = "kv_key_update_exp_nbf_patch_rbac.yaml"
CHALLENGE_LIST = "kv_keys_list_401_challenge_then_200.yaml"
SECRETS_LIST = "kv_secrets_list_single_page_null_nextlink.yaml"
RECORDINGS = (
    *RECORDINGS,
    BACKUP,
    ROTATION_SET,
    ROTATION_UNSET,
    PATCH_RBAC,
    CHALLENGE_LIST,
    SECRETS_LIST,
)
BACKUP_MAGIC = b"&AzureKeyVaultKeyBackupV1.microsoft.com"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_backup_key_answers_a_base64url_blob_with_the_key_backup_magic(azure: Any) -> None:
    recorded = interaction(BACKUP)
    name = recorded.path.split("/")[2]
    azure.admin.load_scenario(_vault(keys=[{"name": name, "versions": [{}]}]))
    answer = send_to_local(azure, recorded, vault=VAULT)
    _same(recorded, answer)
    assert set(answer.body) == {"value"}
    # both decode to Key Vault's key-backup header; what follows is opaque (see README)
    assert _b64url(str(recorded.body["value"]).rstrip(".")).startswith(BACKUP_MAGIC)
    assert _b64url(answer.body["value"]).startswith(BACKUP_MAGIC)
    assert "=" not in answer.body["value"] and "+" not in answer.body["value"]


def test_rotation_policy_of_a_key_with_a_policy(azure: Any) -> None:
    recorded = interaction(ROTATION_SET)
    name = recorded.path.split("/")[2]
    policy = {
        "lifetimeActions": recorded.body["lifetimeActions"],
        "attributes": {"expiryTime": recorded.body["attributes"]["expiryTime"]},
    }
    azure.admin.load_scenario(
        _vault(keys=[{"name": name, "versions": [{}], "rotation_policy": policy}])
    )
    answer = send_to_local(azure, recorded, vault=VAULT)
    _same(recorded, answer)
    assert answer.body["id"] == f"{azure.vault_uri(VAULT)}keys/{name}/rotationpolicy"
    assert answer.body["lifetimeActions"] == recorded.body["lifetimeActions"]
    assert answer.body["attributes"]["expiryTime"] == "P90D"


def test_rotation_policy_of_a_key_without_one_is_the_default_with_null_attributes(
    azure: Any,
) -> None:
    recorded = interaction(ROTATION_UNSET)
    name = recorded.path.split("/")[2]
    azure.admin.load_scenario(_vault(keys=[{"name": name, "versions": [{}]}]))
    answer = send_to_local(azure, recorded, vault=VAULT)
    _same(recorded, answer)
    assert answer.body == recorded.body  # no id, attributes null, one Notify P30D


def _rbac_vault(**objects: Any) -> dict[str, Any]:
    scenario = _vault(**objects)
    (vault,) = scenario["key_vaults"]
    vault.pop("access_policies")
    vault.update(rbac=True, grant_keyguard=True, retention_days=90)  # recorded: 90 days
    return scenario


def test_key_patch_on_an_rbac_vault_answers_the_bundle_then_get_the_same(azure: Any) -> None:
    patch, get = interactions(PATCH_RBAC)
    name, version = str(get.body["key"]["kid"]).split("/")[-2:]
    # the recorded key carries "tags": {} (set empty when it was created; none are set later)
    key = {"name": name, "versions": [{"id": version, "tags": {}}]}
    azure.admin.load_scenario(_rbac_vault(keys=[key]))
    recorded_attrs = get.body["attributes"]
    # the recorder scrubbed the request body: send what sets the recorded nbf and exp
    body = {"attributes": {"nbf": recorded_attrs["nbf"], "exp": recorded_attrs["exp"]}}
    answer = send_to_local(azure, patch, vault=VAULT, body=body)
    _same(patch, answer)
    assert answer.body["attributes"]["nbf"] == recorded_attrs["nbf"]
    assert answer.body["attributes"]["exp"] == recorded_attrs["exp"]
    assert answer.body["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    assert answer.body["attributes"]["hsmPlatform"] == "0"
    assert answer.body["key"]["kid"].endswith(f"/keys/{name}/{version}")
    again = send_to_local(azure, get, vault=VAULT)
    _same(get, again)
    assert again.body["attributes"] == answer.body["attributes"]


def test_keys_listing_challenge_then_one_page_with_a_null_next_link(azure: Any) -> None:
    challenge, listed = interactions(CHALLENGE_LIST)
    (recorded_item,) = listed.body["value"]
    name = str(recorded_item["kid"]).rsplit("/", 1)[1]
    azure.admin.load_scenario(_vault(keys=[{"name": name, "versions": [{"tags": {}}]}]))
    answer = send_to_local(azure, challenge, vault=VAULT, with_token=False)
    _same(challenge, answer)
    assert answer.body == challenge.body  # Unauthorized, AKV10000 missing Bearer or PoP token
    header = answer.header("WWW-Authenticate") or ""
    assert header.startswith('Bearer authorization="https://') and header.endswith(
        'resource="https://vault.azure.net"'
    )
    answer = send_to_local(azure, listed, vault=VAULT)
    _same(listed, answer)
    assert "nextLink" in answer.body and answer.body["nextLink"] is None
    (local_item,) = answer.body["value"]
    assert local_item["kid"].endswith(f"/keys/{name}")  # no version in a keys listing


def test_secrets_listing_is_one_page_of_items_without_values(azure: Any) -> None:
    recorded = interaction(SECRETS_LIST)
    names = [str(i["id"]).rsplit("/", 1)[1] for i in recorded.body["value"]]
    azure.admin.load_scenario(_vault(secrets=[{"name": n, "versions": [{}]} for n in names]))
    answer = send_to_local(azure, recorded, vault=VAULT)
    _same(recorded, answer)
    assert answer.body["nextLink"] is None
    assert sorted(str(i["id"]).rsplit("/", 1)[1] for i in answer.body["value"]) == sorted(names)
    for local_item in answer.body["value"]:
        assert "value" not in local_item and "contentType" not in local_item

"""Key Vault as real Azure answers it, served to Keyguard's pin pass through its own SDK clients.

Each test replays recorded answers (``tests/fixtures/azure/real-traffic/kv_*``) through
:class:`~tests.replay.transport.ReplayTransport` to :class:`~shared.pinning.keyvault.SdkObjectStore`
and :func:`~shared.pinning.execute.pin_object`, and asserts what Keyguard does: the state it
concludes, the alerts, the requests it sends (writes, recovers) and the retry it asks for.

Recorded facts these tests stand on (issue 11, divergences 1-3):

* listing the versions of a missing or soft-deleted name is 200 ``{"value": [], "nextLink":
  null}``, not 404;
* getting a deleted secret whose version is disabled is a 403 (``SecretDisabled``, or in 2020
  ``AccessDenied`` "Operation get is not permitted on this object."): the object IS deleted;
* a just-deleted object answers 404 from ``deleted*/`` for 6-17 s;
* ``backup_key`` answers ``{"value": <base64url>}``: escrow stores the decoded bytes (what a
  restore takes) and a manifest whose size and sha256 describe them;
* a tag update on an RBAC vault is a PATCH answered 200 with the full bundle (``hsmPlatform``
  a string): Keyguard sends tags only, never ``nbf``/``exp``, also for an expired version;
* the first token-less request gets a 401 challenge naming tenant and resource: Keyguard's
  KeyClient (challenge verification on) asks its credential for a vault token in that tenant,
  and refuses a challenge naming another resource without sending any token.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessTokenInfo

from shared.errors import TransientError
from shared.inventory.store import Reference
from shared.pinning.execute import (
    DELETE_VISIBILITY_SECONDS,
    NOT_VISIBLE_CODE,
    ObjectRef,
    PinOutcome,
    pin_object,
)
from shared.pinning.keyvault import SdkObjectStore
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction, interaction, interactions, raw
from tests.replay.transport import ReplayTransport, StaticCredential, retarget

KEY_EMPTY = "kv_key_list_versions_nonexistent_200_empty.yaml"
SECRET_EMPTY = "kv_secret_list_versions_nonexistent_200_empty.yaml"
KEY_DELETE = "kv_key_delete_then_get_deleted.yaml"
KEY_RECOVER = "kv_key_recover_deleted.yaml"
SECRET_DISABLED_DELETE = "kv_secret_disabled_update_delete_get_deleted.yaml"
SECRET_GET_DISABLED = "kv_secret_get_disabled_403.yaml"
BACKUP = "kv_key_backup_200_blob_shortened.yaml"
PATCH_RBAC = "kv_key_update_exp_nbf_patch_rbac.yaml"
CHALLENGE_LIST = "kv_keys_list_401_challenge_then_200.yaml"
RECORDINGS = (
    KEY_EMPTY,
    SECRET_EMPTY,
    KEY_DELETE,
    KEY_RECOVER,
    SECRET_DISABLED_DELETE,
    SECRET_GET_DISABLED,
    BACKUP,
    PATCH_RBAC,
    CHALLENGE_LIST,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
VAULT_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.KeyVault/vaults/vaultname"
)
VAULT_URI = "https://vaultname.vault.azure.net/"
KEY = "livekvtestkey02d9d0f3d"
KEY_VERSION = "82612353054d48569b8b704c8ef8e5d9"  # the recorded deleted key's version
SECRET = "CRUDSecretName-canupdateadisabledsecret-"
SECRET_VERSION = "9dc6ab8382f741fca0598669bca86f82"


def _empty_listing(recording: str, kind: str, name: str) -> Interaction:
    """The recorded 200-empty version listing (after the challenge), for ``name``."""
    listed = interaction(recording, -1)
    assert listed.status == 200 and listed.body == {"value": [], "nextLink": None}
    return retarget(listed, f"{VAULT_URI}{kind}s/{name}/versions")


def _needs(kind: str, name: str, version: str) -> list[Reference]:
    vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    return [
        Reference(
            vm_id=vm,
            vm_name="vm1",
            url=f"{VAULT_URI}{kind}s/{name}/{version}",
            point_id="point-1",
            expiry=NOW + timedelta(days=20),
        )
    ]


def _pin(
    answers: list[Interaction],
    kind: str,
    name: str,
    version: str,
    *,
    remediation: bool,
    absent_for: float | None = None,
) -> tuple[PinOutcome, ReplayTransport]:
    azure, transport = replay_clients(answers)
    store = SdkObjectStore(azure, VAULT_URI, kind)
    obj = ObjectRef(VAULT_ID, VAULT_URI, kind, name)
    out = pin_object(
        obj,
        store,
        _needs(kind, name, version),
        now=NOW,
        remediation=remediation,
        absent_for_seconds=absent_for,
    )
    return out, transport


def _writes(transport: ReplayTransport) -> list[str]:
    return [f"{s.method} {s.path}" for s in transport.calls() if s.method != "GET"]


# -- divergence 1: an empty listing means "not live" -------------------------------------------


def test_soft_deleted_needed_key_listed_empty_is_reported_deleted_with_the_recover_command() -> (
    None
):
    deleted = interaction(KEY_DELETE, -1)  # GET deletedkeys/{name} -> 200 once visible
    assert deleted.status == 200
    out, transport = _pin(
        [_empty_listing(KEY_EMPTY, "key", KEY), deleted], "key", KEY, KEY_VERSION, remediation=False
    )
    assert out.state == "deleted"
    (alert,) = out.alerts
    assert alert.name == "PinnedObjectDeleted" and alert.severity == "critical"
    assert alert.remedy == f"az keyvault key recover --vault-name vaultname --name {KEY}"
    assert alert.details["versions"] == [KEY_VERSION]
    assert [s.path for s in transport.calls("GET")] == [
        f"/keys/{KEY}/versions",
        f"/deletedkeys/{KEY}",
    ]
    assert _writes(transport) == []  # nothing written without remediation


def test_with_remediation_the_soft_deleted_key_is_recovered_and_pinned_on_the_next_run() -> None:
    recovered = interaction(KEY_RECOVER)
    # The recover poller GETs the key until it is live again; real Azure answered that GET with
    # the bundle the recover returned (the same key, version and attributes).
    live_again = retarget(recovered, f"{VAULT_URI}keys/{KEY}/")
    live_again = replace(live_again, method="GET")
    answers = [
        _empty_listing(KEY_EMPTY, "key", KEY),
        interaction(KEY_DELETE, -1),
        recovered,
        live_again,
    ]
    out, transport = _pin(answers, "key", KEY, KEY_VERSION, remediation=True)
    assert _writes(transport) == [f"POST /deletedkeys/{KEY}/recover"]
    assert out.state == "recovered" and out.writes == 1
    (alert,) = out.alerts  # no PinnedVersionMissing for a key that was just recovered
    assert alert.name == "PinnedObjectDeleted" and alert.severity == "high"
    assert alert.details["recovered"] is True
    # the re-list after the recover still answered the recorded empty listing: pin next run
    assert out.relist is True
    assert len(transport.calls("GET", "/versions")) == 2


# -- divergence 2: a deleted secret whose version is disabled answers 403 ------------------------


def _deleted_disabled_403s() -> list[Interaction]:
    """Both recorded answers to GET deletedsecrets/{name} once the disabled secret is visible as
    deleted: 2020 (``AccessDenied``, "not permitted on this object") and the 2021 re-recording
    (``SecretDisabled``), stored as a note on the same step."""
    answer_2020 = interaction(SECRET_DISABLED_DELETE, -1)
    assert answer_2020.status == 403
    note = raw(SECRET_DISABLED_DELETE)["sequence"][-1]["response"]
    answer_2021 = replace(answer_2020, status=note["status"], body=note["body"])
    return [answer_2020, answer_2021]


@pytest.mark.parametrize("answer", _deleted_disabled_403s(), ids=["2020-AccessDenied", "2021"])
def test_a_deleted_secret_with_a_disabled_version_is_deleted_not_a_failure(
    answer: Interaction,
) -> None:
    out, transport = _pin(
        [_empty_listing(SECRET_EMPTY, "secret", SECRET), answer],
        "secret",
        SECRET,
        SECRET_VERSION,
        remediation=False,
    )
    assert out.state == "deleted"
    (alert,) = out.alerts
    assert alert.name == "PinnedObjectDeleted"
    assert alert.remedy == f"az keyvault secret recover --vault-name vaultname --name {SECRET}"
    assert transport.calls("GET", "/deletedsecrets/")[0].answer is answer


@pytest.mark.parametrize("answer", _deleted_disabled_403s(), ids=["2020-AccessDenied", "2021"])
def test_is_deleted_says_yes_to_the_recorded_403_of_a_deleted_disabled_secret(
    answer: Interaction,
) -> None:
    azure, transport = replay_clients([answer])
    assert SdkObjectStore(azure, VAULT_URI, "secret").is_deleted(SECRET) is True
    assert [s.path for s in transport.calls("GET")] == [f"/deletedsecrets/{SECRET.lower()}"]


def test_the_live_disabled_secret_403_reads_the_same_as_the_deleted_one() -> None:
    """The live GET of a disabled secret (kv_secret_get_disabled_403) carries the very body the
    2021 deleted-secret step does: the classifier keys on that body, not on the path."""
    from shared.pinning.keyvault import deleted_but_unreadable

    live = interaction(SECRET_GET_DISABLED)
    assert live.status == 403 and deleted_but_unreadable(live.body)
    assert live.body == _deleted_disabled_403s()[1].body


# -- divergence 3: a just-deleted object is invisible as deleted for a while ---------------------


def _just_deleted_404() -> Interaction:
    """GET deletedsecrets/{name} -> 404 SecretNotFound, recorded right after the DELETE."""
    answers = interactions(SECRET_DISABLED_DELETE)
    answer = next(a for a in answers if a.method == "GET" and a.status == 404)
    assert answer.body["error"]["code"] == "SecretNotFound"
    return answer


def test_a_needed_secret_in_the_just_deleted_window_is_retried_not_called_missing() -> None:
    with pytest.raises(TransientError) as caught:
        _pin(
            [_empty_listing(SECRET_EMPTY, "secret", SECRET), _just_deleted_404()],
            "secret",
            SECRET,
            SECRET_VERSION,
            remediation=True,
        )
    assert caught.value.code == NOT_VISIBLE_CODE
    # the retry comes after the longest recorded window (17 s), not at once
    assert caught.value.retry_after is not None and caught.value.retry_after >= 17


def test_still_neither_live_nor_deleted_after_the_window_is_missing() -> None:
    out, transport = _pin(
        [_empty_listing(SECRET_EMPTY, "secret", SECRET), _just_deleted_404()],
        "secret",
        SECRET,
        SECRET_VERSION,
        remediation=True,
        absent_for=DELETE_VISIBILITY_SECONDS,
    )
    assert out.state == "missing"
    (alert,) = out.alerts
    assert alert.name == "PinnedVersionMissing" and alert.severity == "critical"
    assert _writes(transport) == []


def test_the_recorded_sequence_deleted_later_becomes_visible_and_is_recovered() -> None:
    """The key's recorded sequence: 404 from deletedkeys/ first, 200 after ~6 s. The first pass
    retries; the pass after the window finds the key deleted and recovers it."""
    polls = [a for a in interactions(KEY_DELETE) if a.method == "GET"]
    assert [a.status for a in polls] == [404, 200]
    listing = _empty_listing(KEY_EMPTY, "key", KEY)
    with pytest.raises(TransientError):
        _pin([listing, polls[0]], "key", KEY, KEY_VERSION, remediation=False)
    out, _ = _pin([listing, polls[1]], "key", KEY, KEY_VERSION, remediation=False, absent_for=20.0)
    assert out.state == "deleted" and out.alerts[0].name == "PinnedObjectDeleted"


# -- escrow: the recorded backup_key answer, stored as the blob a restore takes ------------------

BACKUP_MAGIC = b"&AzureKeyVaultKeyBackupV1.microsoft.com"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_escrow_stores_the_decoded_backup_blob_and_a_manifest_that_matches_it(
    storage_env: Any,
) -> None:
    """Key Vault answers ``{"value": <base64url>}``; the SDK hands Keyguard the decoded bytes,
    which is what ``az keyvault key restore --file`` and ``restore_key_backup`` take. Escrow
    must store those bytes unchanged (not the base64 text, not re-encoded) and describe them."""
    from shared import names
    from shared.pinning.escrow import escrow_object

    recorded = interaction(BACKUP)
    name = recorded.path.split("/")[2]
    # the recording shortened the blob and marked it "..."; base64 decoding skips the dots
    value = str(recorded.body["value"])
    assert value.endswith("...")
    expected = _b64url_decode(value[:-3])
    azure, transport = replay_clients([recorded])
    container = storage_env.clients.container(names.ESCROW_CONTAINER)
    obj = ObjectRef(VAULT_ID, VAULT_URI, "key", name)
    written = escrow_object(
        container, SdkObjectStore(azure, VAULT_URI, "key"), obj, [KEY_VERSION], now=NOW
    )
    assert written == f"vaultname/key/{name}/2026-03-01.blob"
    assert [f"{s.method} {s.path}" for s in transport.calls()] == [f"POST /keys/{name}/backup"]
    blob = container.get_blob_client(written).download_blob().readall()
    assert blob == expected and blob.startswith(BACKUP_MAGIC)
    # the restore path sends the same base64url text Key Vault gave (the round trip holds)
    assert base64.urlsafe_b64encode(blob).rstrip(b"=").decode() == value[:-3]
    manifest = json.loads(
        container.get_blob_client(written.replace(".blob", ".json")).download_blob().readall()
    )
    assert manifest["size"] == len(blob)
    assert manifest["sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["needed_versions"] == [KEY_VERSION]
    # a second pass the same day writes nothing and asks Key Vault for nothing
    again = escrow_object(
        container, SdkObjectStore(azure, VAULT_URI, "key"), obj, [KEY_VERSION], now=NOW
    )
    assert again is None and len(transport.calls("POST")) == 1


# -- the pin pass's tag write on an RBAC vault (the recorded PATCH answer) -----------------------

RBAC_VAULT_URI = "https://c7ntestvault.vault.azure.net/"
RBAC_VAULT_ID = VAULT_ID.replace("/vaultname", "/c7ntestvault")


def _rbac_key() -> tuple[str, str, list[Interaction]]:
    """(name, version, answers): a one-version listing and the recorded PATCH for that version.

    The key's version listing was not recorded with the PATCH; its one item is the recorded
    bundle's ``kid``/``attributes``/``tags`` (the shape list items have, cf.
    kv_key_list_versions_paged). The recorded PATCH was sent without a version (``keys/test/``);
    Keyguard always names the version, so the same answer is served for ``keys/test/{version}``.
    """
    patch, get = interactions(PATCH_RBAC)
    assert patch.header("x-ms-keyvault-rbac-assignment-id")  # granted by a role assignment
    kid = str(get.body["key"]["kid"])
    name, version = kid.split("/")[-2:]
    listed_item = {"kid": kid, "attributes": get.body["attributes"], "tags": get.body["tags"]}
    listing = replace(
        retarget(get, f"{RBAC_VAULT_URI}keys/{name}/versions"),
        body={"value": [listed_item], "nextLink": None},
    )
    return name, version, [listing, retarget(patch, f"{RBAC_VAULT_URI}keys/{name}/{version}")]


def _pin_rbac(now: datetime, *, remediation: bool) -> tuple[PinOutcome, ReplayTransport, str]:
    name, version, answers = _rbac_key()
    azure, transport = replay_clients(answers)
    needs = [
        Reference(
            vm_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
            vm_name="vm1",
            url=f"{RBAC_VAULT_URI}keys/{name}/{version}",
            point_id="point-1",
            expiry=now + timedelta(days=20),
        )
    ]
    out = pin_object(
        ObjectRef(RBAC_VAULT_ID, RBAC_VAULT_URI, "key", name),
        SdkObjectStore(azure, RBAC_VAULT_URI, "key"),
        needs,
        now=now,
        remediation=remediation,
    )
    return out, transport, version


def test_pin_tags_a_needed_version_on_the_rbac_vault_and_touches_nothing_else() -> None:
    # between the recorded nbf (2025-03-01) and exp (2025-04-01): an ordinary live version
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    out, transport, version = _pin_rbac(now, remediation=True)
    (patch,) = transport.calls("PATCH")
    assert patch.path == f"/keys/test/{version}"
    # tags only: no attributes, so Key Vault keeps nbf, exp and enabled as they are
    assert set(patch.body) == {"tags"}
    assert set(patch.body["tags"]) == {"keyguard-pinned-until", "keyguard-pinned-by"}
    # the point expires 2025-03-30T12:00: the pin runs to the end of that day, rounded up
    assert patch.body["tags"]["keyguard-pinned-until"] == "2025-03-31"
    assert out.state == "listed" and out.writes == 1 and out.alerts == []


def test_an_expired_needed_version_is_reported_and_its_expiry_never_extended() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)  # after the recorded exp (2025-04-01)
    out, transport, version = _pin_rbac(now, remediation=True)
    (alert,) = out.alerts
    assert alert.name == "PinnedVersionExpired" and "still usable" in alert.problem
    # still pinned (the recovery point needs it), with tags only: exp stays 2025-04-01
    (patch,) = transport.calls("PATCH")
    assert patch.path == f"/keys/test/{version}" and set(patch.body) == {"tags"}


# -- Key Vault's challenge, as real Azure sent it, through Keyguard's own KeyClient --------------


class _AskedCredential(StaticCredential):
    """Keyguard's credential boundary: records what the challenge policy asks a token for."""

    def __init__(self) -> None:
        self.asked: list[tuple[tuple[str, ...], Any]] = []

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.asked.append((scopes, dict(options or {})))
        return super().get_token_info(*scopes, options=options)


def _challenged(
    challenge: Interaction, vault_host: str
) -> tuple[Any, ReplayTransport, _AskedCredential]:
    """Keyguard's KeyClient for ``vault_host`` over the challenge and the recorded listing.

    azure-keyvault caches a vault's challenge process-wide by URL, so each test names its own
    vault host (the transport matches paths, not hosts)."""
    from shared.clients import AzureClients
    from tests.replay.harness import replay_settings

    listed = interaction(CHALLENGE_LIST, 1)
    transport = ReplayTransport([challenge, listed])
    credential = _AskedCredential()
    azure = AzureClients(replay_settings(), credential, transport=transport)
    client = azure.key_client(f"https://{vault_host}/")
    return client, transport, credential


def test_the_recorded_challenge_is_answered_with_a_vault_token_for_its_tenant() -> None:
    challenge = interaction(CHALLENGE_LIST, 0)
    assert challenge.status == 401 and challenge.body["error"]["code"] == "Unauthorized"
    client, transport, credential = _challenged(challenge, challenge.host)
    keys = list(client.list_properties_of_keys())
    tenant = (challenge.header("WWW-Authenticate") or "").split("login.microsoftonline.com/")[1]
    (asked,) = credential.asked
    assert asked[0] == ("https://vault.azure.net/.default",)
    assert asked[1]["tenant_id"] == tenant.split('"')[0]
    first, second = transport.sent
    assert first.answer is challenge and "Authorization" not in first.headers
    assert second.headers["Authorization"] == "Bearer replayed-token"
    assert [(k.name, k.version, k.enabled) for k in keys] == [
        ("cfb-qmbknzbm-generated-certificate", None, True)
    ]


def test_a_challenge_naming_another_resource_gets_no_token_and_is_permanent() -> None:
    """Challenge verification is on in production settings: a 401 that names a resource other
    than the vault's domain is refused before any token is sent, and Keyguard does not retry."""
    from shared.errors import PermanentError
    from shared.retry import classify

    recorded = interaction(CHALLENGE_LIST, 0)
    header = (recorded.header("WWW-Authenticate") or "").replace(
        "https://vault.azure.net", "https://vault.attacker.example"
    )
    forged = replace(recorded, headers={**recorded.headers, "WWW-Authenticate": header})
    client, transport, _ = _challenged(forged, "keyguard-forged-challenge.vault.azure.net")
    with pytest.raises(ValueError, match="does not match the requested domain") as caught:
        list(client.list_properties_of_keys())
    assert len(transport.sent) == 1
    assert all("Authorization" not in s.headers for s in transport.sent)
    assert isinstance(classify(caught.value), PermanentError)

"""A rotation event's version, checked against what real Key Vault lists (issue 13 item 2).

The backup fan-out acts only on a version Key Vault lists, enabled
(:func:`shared.backups.rotation.read_versions` / :func:`~shared.backups.rotation.check_version`,
Keyguard's real ``KeyClient`` over recorded answers):

* the recorded paged listing of a 7-version key (two pages, ordered by version id, not by
  creation): every version is read across both pages, an invented version is refused, and
  "newest" is the latest ``created``, not the last listed;
* the recorded 200-empty listing of a name that does not exist: the object is not live, so a
  forged event naming it plans nothing.
"""

from __future__ import annotations

from shared.backups import rotation
from tests.replay.harness import replay_clients
from tests.replay.recordings import interaction, interactions
from tests.replay.transport import retarget

PAGED = "kv_key_list_versions_paged.yaml"
EMPTY = "kv_key_list_versions_nonexistent_200_empty.yaml"
RECORDINGS = (PAGED, EMPTY)

VAULT_URI = "https://vaultname.vault.azure.net/"
KEY = "livekvtesttestKey965211db"


def test_the_paged_listing_gives_every_version_and_refuses_an_invented_one() -> None:
    azure, transport = replay_clients(interactions(PAGED))
    versions = rotation.read_versions(azure, VAULT_URI, "key", KEY)
    assert versions is not None and len(versions) == 7
    assert len(transport.calls("GET", "/versions")) == 2  # both pages, one listing
    newest = max(versions.values(), key=lambda v: v.created.timestamp() if v.created else 0)
    assert rotation.check_version(versions, None) == (newest, None)
    listed_last = list(versions)[-1]
    assert rotation.check_version(versions, listed_last.upper())[0] == versions[listed_last]
    forged = "0" * 32
    assert rotation.check_version(versions, forged) == (None, rotation.VERSION_NOT_FOUND)


def test_an_empty_listing_means_the_object_is_not_live() -> None:
    listed = retarget(interaction(EMPTY, -1), f"{VAULT_URI}keys/{KEY}/versions")
    azure, _ = replay_clients([listed])
    versions = rotation.read_versions(azure, VAULT_URI, "key", KEY)
    assert versions is None
    assert rotation.check_version(versions, "0" * 32) == (None, rotation.OBJECT_NOT_FOUND)

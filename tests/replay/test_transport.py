"""The replay layer itself: recorded answers reach Keyguard's SDK clients unchanged."""

from __future__ import annotations

import pytest

from shared.pinning.keyvault import SdkObjectStore
from tests.replay.harness import replay_clients
from tests.replay.recordings import interactions, recording_files
from tests.replay.transport import UnrecordedRequest

PAGED = "kv_key_list_versions_paged.yaml"
RECORDINGS = (PAGED,)


def test_every_recording_loads_and_names_its_source() -> None:
    files = recording_files()
    assert files, "no recordings vendored"
    for path in files:
        head = path.read_text(encoding="utf-8").splitlines()[0]
        assert head.startswith("# source: "), f"{path.name} does not name its source"


def test_paged_version_listing_is_followed_through_the_recorded_next_link() -> None:
    pages = interactions(PAGED)
    vault_uri = f"https://{pages[0].host}/"
    azure, transport = replay_clients(pages)
    versions = SdkObjectStore(azure, vault_uri, "key").list_versions(pages[0].path.split("/")[2])
    recorded = [item["kid"].rsplit("/", 1)[1] for page in pages for item in page.body["value"]]
    assert versions is not None
    assert [v.version for v in versions] == recorded
    # the second page was asked for by the recorded nextLink (with :443 and $skiptoken)
    asked = transport.calls("GET")
    assert len(asked) == len(pages)
    assert "$skiptoken" in asked[-1].url.lower()
    # the challenge was answered and the token then sent on every call
    assert all("Authorization" in s.headers for s in asked)


def test_a_request_nothing_was_recorded_for_fails_loudly() -> None:
    pages = interactions(PAGED)
    azure, _ = replay_clients(pages)
    store = SdkObjectStore(azure, f"https://{pages[0].host}/", "key")
    with pytest.raises(UnrecordedRequest):
        store.is_deleted("not-recorded")

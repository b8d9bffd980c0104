"""Inventory records: canonical object ids, version parsing, entity round trips."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.inventory import RecoveryPointRecord, VmRecord, object_id, parse_object_url, version_of


def test_object_ids_are_unversioned_lower_case() -> None:
    url = "https://KV1.vault.azure.net/keys/Kek/ABC123"
    assert object_id(url) == "https://kv1.vault.azure.net/keys/kek"
    assert object_id("https://kv1.vault.azure.net/keys/kek") == object_id(url)
    assert version_of(url) == "abc123" and version_of("https://kv1.vault.azure.net/keys/k") is None
    des = "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/diskEncryptionSets/D/"
    assert object_id(des) == des.rstrip("/").lower()
    assert parse_object_url("https://kv1/certificates/c/1") is None
    parsed = parse_object_url("https://127.0.0.1:4443/secrets/bek/v1")
    assert parsed is not None and parsed.vault_uri == "https://127.0.0.1:4443/"


def test_records_round_trip_and_uses() -> None:
    vm = VmRecord(
        "/s/vm",
        "vm",
        "s",
        "rg",
        "westeurope",
        "ade",
        bek_secret_url="https://kv/secrets/b/1",
        kek_key_url="https://kv/keys/k/2",
        bek_vault_id="/kv",
        kek_vault_id="/kv",
    )
    assert VmRecord.from_entity({**vm.to_entity(), "PartitionKey": "vm"}) == vm
    assert vm.uses() == {
        "https://kv/secrets/b": ("secret", "https://kv/secrets/b/1", "/kv"),
        "https://kv/keys/k": ("key", "https://kv/keys/k/2", "/kv"),
    }
    point = RecoveryPointRecord(
        "1",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        expiry=datetime(2026, 2, 1, tzinfo=UTC),
        kek_key_url="https://kv/keys/k/1",
        kek_vault_id="/kv",
    )
    assert RecoveryPointRecord.from_entity(point.to_entity()) == point
    assert list(point.references()) == ["https://kv/keys/k"]


def test_vault_index_keeps_des_keys_apart_from_ade_keys() -> None:
    """A DES key is indexed as ``cmk`` (Backup never reads it); in a vault ADE also uses, the
    KEK and BEK keep their kinds, so Backup's demand there stays. Records written before the
    layout (``index_layout`` None) kept the DES key as ``key``: the upsert deletes that row."""
    from shared.inventory.records import INDEX_LAYOUT

    des = "/s/rg/providers/Microsoft.Compute/diskEncryptionSets/d"
    vm = VmRecord(
        "/s/vm",
        "vm",
        "s",
        "rg",
        "westeurope",
        "ade",
        bek_secret_url="https://kv/secrets/b/1",
        kek_key_url="https://kv/keys/k/2",
        bek_vault_id="/kv",
        kek_vault_id="/kv",
        des_id=des,
        des_key_url="https://kv/keys/dk/3",
        des_key_vault_id="/kv",
        des_ids=f"{des} {des}2",
        index_layout=INDEX_LAYOUT,
    )
    assert vm.vault_index() == {
        "https://kv/secrets/b": ("secret", "/kv"),
        "https://kv/keys/k": ("key", "/kv"),
        "https://kv/keys/dk": ("cmk", "/kv"),
    }
    assert vm.all_des_ids() == (des, f"{des}2")
    assert {k for k, (kind, *_r) in vm.uses().items() if kind == "des"} == {
        des.lower(),
        f"{des}2".lower(),
    }
    old = VmRecord(
        "/s/vm",
        "vm",
        "s",
        "rg",
        "w",
        "des",
        des_id=des,
        des_key_url="https://kv/keys/dk/3",
        des_key_vault_id="/kv",
    )
    assert old.vault_index() == {"https://kv/keys/dk": ("key", "/kv")}

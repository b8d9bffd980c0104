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

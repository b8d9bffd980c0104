"""The watch (issue 15 item 3): one PIN item per needed in-scope key/secret, from the
inventory alone; the timer is registered with its schedule setting and imports lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from handlers import watch as watch_handler
from shared import watch
from shared.config import ConfigError, load_settings
from shared.inventory.store import KnownObject, Reference
from shared.workitems import WorkKind
from tests.events import SUBSCRIPTION, VAULT_ID
from tests.events import make_settings as settings_for
from tests.unit.test_sweep import FakeCounters, FakeQueue

NOW = datetime(2026, 11, 22, 3, 15, 4, tzinfo=UTC)
URI = "https://kv-prod.vault.azure.net"
OTHER_VAULT = VAULT_ID.replace(SUBSCRIPTION, "99999999-9999-4999-8999-999999999999")


@dataclass
class FakeInventory:
    """The inventory's two reads, counted."""

    known: list[KnownObject]
    refs: dict[str, list[Reference]] = field(default_factory=dict)
    reads: int = 0

    def objects(self) -> list[KnownObject]:
        self.reads += 1
        return list(self.known)

    def references(self, object_id_or_url: str) -> list[Reference]:
        self.reads += 1
        return list(self.refs.get(object_id_or_url, []))


def _obj(kind: str, name: str, vault: str = VAULT_ID) -> KnownObject:
    return KnownObject(f"{URI}/{kind}s/{name}", kind, vault, name)


def _in_use(obj: KnownObject, vm: str = "vm-web") -> Reference:
    return Reference(vm_id=f"/vm/{vm}", vm_name=vm, url=f"{obj.object_id}/v1")


def _point(obj: KnownObject, expiry: datetime) -> Reference:
    return Reference("/vm/vm-old", "vm-old", f"{obj.object_id}/v0", point_id="rp1", expiry=expiry)


def test_only_needed_in_scope_keys_and_secrets_are_planned_as_pins() -> None:
    kek, bek, stale, expired = (
        _obj("key", "kek-app"),
        _obj("secret", "bek-vm-web"),
        _obj("secret", "bek-gone-vm"),
        _obj("secret", "bek-expired-points"),
    )
    foreign = _obj("key", "kek-elsewhere", OTHER_VAULT)
    des = KnownObject("/subscriptions/x/diskEncryptionSets/des1", "des", None, "des1")
    inventory = FakeInventory(
        [kek, bek, stale, expired, foreign, des],
        {
            kek.object_id: [_in_use(kek)],
            bek.object_id: [_point(bek, NOW + timedelta(days=20))],
            expired.object_id: [_point(expired, NOW - timedelta(days=1))],
            foreign.object_id: [_in_use(foreign)],
        },
    )
    queue, counters = FakeQueue(), FakeCounters()
    deps = watch.WatchDeps(settings_for(), queue, inventory, counters)

    result = watch.run_watch(deps, now=NOW)

    assert sorted(watch.watched(result.items)) == [
        "kv-prod/key/kek-app",
        "kv-prod/secret/bek-vm-web",
    ]
    assert queue.items == list(result.items)
    assert all(i.kind is WorkKind.PIN and i.params["trigger"] == "watch" for i in result.items)
    assert all(i.reasons == (f"watch:{NOW.isoformat()}",) for i in result.items)
    # the object is named for the pin pass; the key is the watch's own (never an event's)
    assert {i.params["object_id"] for i in result.items} == {kek.object_id, bek.object_id}
    assert all("watch20261122t031500z" in i.key for i in result.items)
    assert (result.objects, result.not_needed, result.out_of_scope) == (5, 2, 1)
    assert counters.counts == {"watch.items": 2}
    # the inventory only: the objects partition, then the references of each in-scope one
    assert inventory.reads == 1 + 4


def test_two_runs_in_one_minute_plan_the_same_keys_the_next_period_new_ones() -> None:
    kek = _obj("key", "kek-app")
    inventory = FakeInventory([kek], {kek.object_id: [_in_use(kek)]})
    deps = watch.WatchDeps(settings_for(), FakeQueue(), inventory)
    first = watch.run_watch(deps, now=NOW)
    again = watch.run_watch(deps, now=NOW + timedelta(seconds=30))
    later = watch.run_watch(deps, now=NOW + timedelta(minutes=15))
    assert first.items[0].key == again.items[0].key
    assert later.items[0].key != first.items[0].key


def test_pin_calls_for_200_needed_objects_stay_far_inside_key_vaults_limits() -> None:
    """Key Vault service limits (azure-facts 6.5, learn.microsoft.com key-vault-limits,
    2025-07): per vault per region per 10 s, 4,000 'other' transactions for software RSA-2048
    keys and for secrets (subscription: 5x). The watch costs one version listing per needed
    object (a page per 25 versions): 200 objects in ONE vault, each run at once, are 200
    calls — 5 % of one 10-s window, and ~0.02 % of the 15 minutes between runs."""
    known = [_obj("secret", f"bek-{i:03d}") for i in range(199)] + [_obj("key", "kek-shared")]
    inventory = FakeInventory(known, {o.object_id: [_in_use(o, f"vm-{o.name}")] for o in known})
    result = watch.run_watch(watch.WatchDeps(settings_for(), FakeQueue(), inventory), now=NOW)
    listings_per_run = len(result.items)  # one list-versions each (<= 25 versions: one page)
    assert listings_per_run == 200
    per_vault_10s_limit, window_s, period_s = 4000, 10, 15 * 60
    assert listings_per_run <= 0.05 * per_vault_10s_limit
    assert listings_per_run / (period_s / window_s) < 0.001 * per_vault_10s_limit


def test_watch_schedule_is_validated_at_startup_and_defaults_to_every_15_minutes() -> None:
    assert settings_for().watch_schedule == "0 */15 * * * *"
    env = {
        "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "KEYGUARD_SUBSCRIPTIONS": SUBSCRIPTION,
        "KEYGUARD_VAULTS": VAULT_ID,
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "5a1c7e0e-0000-4000-8000-00000000b002",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    assert load_settings({**env, "KEYGUARD_WATCH_SCHEDULE": "*/5 * * * * *"}).watch_schedule == (
        "*/5 * * * * *"
    )
    for bad, why in (("1.00:00:00", "TimeSpan"), ("daily", "NCRONTAB"), ("0 0 0 31 2 *", "never")):
        with pytest.raises(ConfigError, match="KEYGUARD_WATCH_SCHEDULE") as info:
            load_settings({**env, "KEYGUARD_WATCH_SCHEDULE": bad})
        assert why in str(info.value)


def test_the_timer_is_registered_with_the_watch_schedule_setting() -> None:
    """function_app reads the schedule from the validated settings (so it has a default and
    no app setting is required), and still imports no handler or SDK for it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "KEYGUARD_SUBSCRIPTIONS": SUBSCRIPTION,
        "KEYGUARD_VAULTS": "*",
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "5a1c7e0e-0000-4000-8000-00000000b002",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    probe = (
        "import sys, function_app; "
        "fn = [f for f in function_app.app.get_functions() if f.get_function_name() == 'watch']; "
        "print([b.schedule for f in fn for b in f.get_bindings() if b.type == 'timerTrigger'], "
        "sorted(m for m in sys.modules if m.startswith(('handlers', 'shared.watch'))))"
    )
    root = Path(__file__).resolve().parents[2]
    for setting, expected in ((None, "0 */15 * * * *"), ("*/5 * * * * *", "*/5 * * * * *")):
        run_env = dict(env)
        run_env.pop("KEYGUARD_WATCH_SCHEDULE", None)
        if setting is not None:
            run_env["KEYGUARD_WATCH_SCHEDULE"] = setting
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=root, env=run_env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"[{expected!r}] []"


class _Timer:
    past_due = True


def test_handler_runs_the_watch_with_given_deps() -> None:
    kek = _obj("key", "kek-app")
    queue = FakeQueue()
    deps: Any = watch.WatchDeps(
        settings_for(), queue, FakeInventory([kek], {kek.object_id: [_in_use(kek)]})
    )
    result = watch_handler.handle(_Timer(), deps=deps)  # type: ignore[arg-type]
    assert len(result.items) == 1 and queue.items == list(result.items)

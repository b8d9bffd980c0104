"""Start, steer and stop a local Azure from Python: :class:`LocalAzure` and :class:`AdminClient`.

``LocalAzure.start(scenario)`` runs the emulator in-process (threads), loads the scenario and
returns a handle whose :meth:`LocalAzure.env` gives the app settings that point Keyguard at
it — the managed identity endpoint, a Custom cloud profile, the CA bundle — so the app finds
the local Azure by configuration alone. :class:`AdminClient` wraps the admin API, one method
per route, plus generic :meth:`AdminClient.get`/:meth:`AdminClient.post` for the change
routes the service modules add.
"""

from __future__ import annotations

import ssl
import urllib.parse
from pathlib import Path
from typing import Any

from local.azure.admin_client import AdminClient, AdminError
from local.lifecycle import StopsOnExit

__all__ = ["DEFAULT_SPEEDUP", "AdminClient", "AdminError", "LocalAzure"]

DEFAULT_SPEEDUP = 100.0


class LocalAzure(StopsOnExit):
    """A running local Azure (in-process). Use :meth:`start`; stop with :meth:`stop` or ``with``."""

    def __init__(self, *, arm_port: int = 0, delivery_speedup: float = DEFAULT_SPEEDUP) -> None:
        from local.azure import eventgrid, faults, identity, scenario
        from local.azure.core import World
        from local.azure.server import LocalAzureServer

        scenario.service_modules()  # import them so their routes exist
        self.world = World()
        identity.install(self.world)
        faults.install(self.world)
        eventgrid.install(self.world, speedup=delivery_speedup)
        self.server = LocalAzureServer(self.world, arm_port=arm_port)
        self._scenario_source: Any = None
        self.admin: AdminClient

    @classmethod
    def start(
        cls,
        scenario: str | Path | dict[str, Any] | None = None,
        *,
        arm_port: int = 0,
        delivery_speedup: float = DEFAULT_SPEEDUP,
    ) -> LocalAzure:
        """Start the listeners and delivery threads, then load ``scenario`` (a path, YAML/JSON
        text or dict; None: an empty world)."""
        from local.azure import eventgrid
        from local.azure import scenario as scenarios

        self = cls(arm_port=arm_port, delivery_speedup=delivery_speedup)
        self.server.start()
        self.world.eventgrid.ssl_context = ssl.create_default_context(cafile=self.ca_path)
        eventgrid.start(self.world)
        self.admin = AdminClient(self.arm_url, self.ca_path)
        try:
            if scenario is not None:
                source = (
                    Path(scenario) if isinstance(scenario, str) and _is_path(scenario) else scenario
                )
                scenarios.load(self.world, source)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop delivery threads and listeners; remove the CA temp dir."""
        from local.azure import eventgrid

        eventgrid.stop(self.world)
        self.server.stop()

    def keyguard_grants(
        self, *, enforced: bool = True, infra_grants: bool = True, omit: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Steer the ARM role check of Keyguard's principal (local/azure/arm_rbac.py).

        ``enforced``: check Keyguard's ARM calls; ``infra_grants``: Keyguard holds infra/'s
        grants (else only the scenario's); ``omit``: infra grants to leave out by role name
        (``keyguardBackupRole``...) or single actions
        (``Microsoft.RecoveryServices/vaults/read``). The defaults are the normal state; tests
        of the emulator itself that use the app's identity as a stand-in for tooling switch
        both off.
        """
        state: dict[str, Any] = self.admin.post(
            "/authorization/keyguard",
            {"enforced": enforced, "infra_grants": infra_grants, "omit": list(omit)},
        )
        return state

    # -- endpoints -----------------------------------------------------------------------------

    @property
    def arm_url(self) -> str:
        """``https://127.0.0.1:{port}`` — the ARM endpoint (also admin and Event Grid)."""
        return self.server.arm_url

    @property
    def ca_path(self) -> str:
        """PEM of the CA that signed every HTTPS listener."""
        return self.server.ca_path

    @property
    def identity_endpoint(self) -> str:
        """``IDENTITY_ENDPOINT`` (plain http, App Service protocol)."""
        return self.server.identity_endpoint

    @property
    def identity_header(self) -> str:
        """``IDENTITY_HEADER`` (the secret the identity endpoint requires)."""
        return str(self.world.identity.header)  # type: ignore[attr-defined]

    @property
    def tenant_id(self) -> str:
        """The scenario's tenant."""
        return self.world.tenant_id

    def topic_endpoint(self, name: str) -> str:
        """The publish URL of custom topic ``name`` (give it to ``EventGridPublisherClient``)."""
        return f"{self.arm_url}/eventgrid/topics/{urllib.parse.quote(name)}/api/events"

    def vault_uri(self, vault_name: str) -> str:
        """A vault's data-plane URI (opens its listener if needed)."""
        return self.server.add_vault_listener(vault_name)

    def env(self, *, alert_topic: str = "keyguard-alerts") -> dict[str, str]:
        """App settings pointing Keyguard at this local Azure.

        Besides the endpoints and the Custom cloud profile, the scope settings Keyguard
        requires come from the scenario: ``KEYGUARD_SUBSCRIPTIONS``, ``KEYGUARD_VAULTS``
        (``*``) and ``KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID`` (``principals.backup_management``,
        when the scenario names it). Storage settings come from Azurite, not from here.
        """
        env = {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "KEYGUARD_CLOUD": "Custom",
            "KEYGUARD_ARM_ENDPOINT": self.arm_url,
            "KEYGUARD_ARM_AUDIENCE": "https://management.azure.com",
            "KEYGUARD_KEYVAULT_VERIFY_CHALLENGE": "false",
            "KEYGUARD_CA_BUNDLE": self.ca_path,
            "KEYGUARD_LRO_POLL_SECONDS": "0.05",
            "KEYGUARD_TENANT_ID": self.tenant_id,
            "KEYGUARD_ALERT_TOPIC_ENDPOINT": self.topic_endpoint(alert_topic),
            "KEYGUARD_SUBSCRIPTIONS": ",".join(self.world.subscriptions),
            "KEYGUARD_VAULTS": "*",
        }
        backup = self.world.principals.get("backup_management")
        if backup:
            env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"] = backup
        return env


def _is_path(text: str) -> bool:
    """A string is a path when it is one line naming an existing file."""
    return "\n" not in text and len(text) < 4096 and Path(text).is_file()

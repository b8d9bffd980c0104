"""Cached Azure SDK clients built from the settings.

One :class:`AzureClients` per process holds one credential and one client per vault URL
(Key Vault data plane) or per subscription (ARM). Every client gets the cloud profile's
endpoint, audience, CA bundle and LRO polling interval, azure-core's retry policy with a few
attempts (the work queue retries across minutes; HTTP retries only bridge blips), and the
:class:`CallCounter` policy so each Azure call is counted.

SDK modules are imported inside the methods that build the clients: importing this module
costs nothing, and an invocation pays only for the SDKs it uses.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from shared.throttle import ArmPacer

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.eventgrid import EventGridPublisherClient
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.secrets import SecretClient
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.keyvault import KeyVaultManagementClient
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

    from shared.config import Settings


class CallCounter:
    """Counts outgoing Azure calls by ``METHOD host`` (thread-safe).

    Used as an azure-core per-call policy (see :meth:`policy`); benchmarks and logs read
    :meth:`snapshot`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, method: str, url: str) -> None:
        """Count one call."""
        host = urlparse(url).netloc
        with self._lock:
            self._counts[f"{method} {host}"] += 1

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts so far."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        """All calls counted so far."""
        with self._lock:
            return sum(self._counts.values())

    def policy(self) -> Any:
        """An azure-core ``SansIOHTTPPolicy`` that records each request it sees."""
        from azure.core.pipeline.policies import SansIOHTTPPolicy

        counter = self

        class _CountingPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
            def on_request(self, request: Any) -> None:
                counter.record(request.http_request.method, request.http_request.url)

        return _CountingPolicy()


class AzureClients:
    """Builds and caches the SDK clients Keyguard uses.

    Parameters
    ----------
    settings:
        The validated settings (cloud profile, retry, identity).
    credential:
        A token credential; by default a ``ManagedIdentityCredential`` (the user-assigned
        identity when ``AZURE_CLIENT_ID`` is set), which also serves the local Azure through
        ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``.
    transport:
        An azure-core ``HttpTransport`` every client shares; by default each client builds
        its own ``RequestsTransport`` (azure-core's default). The tests pass one that answers
        from recorded real Azure traffic.
    """

    def __init__(
        self,
        settings: Settings,
        credential: TokenCredential | None = None,
        *,
        transport: Any | None = None,
    ) -> None:
        self._settings = settings
        self._credential = credential
        self._transport = transport
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}
        self.calls = CallCounter()
        self.pacer = ArmPacer()
        self._vault_uris: dict[str, str] = {}
        self._vault_ids: dict[str, str] = {}  # ARM's spelling of each vault id read from ARM

    # -- shared pieces ----------------------------------------------------------------------

    @property
    def credential(self) -> TokenCredential:
        """The token credential all clients share (built on first use)."""
        with self._lock:
            if self._credential is None:
                from azure.identity import ManagedIdentityCredential

                client_id = self._settings.managed_identity_client_id
                self._credential = (
                    ManagedIdentityCredential(client_id=client_id)
                    if client_id
                    else ManagedIdentityCredential()
                )
            return self._credential

    def _common(self) -> dict[str, Any]:
        from shared import fencing
        from shared.retry import HTTP_TRY_SECONDS, unexpected_response_policy
        from shared.transport import transport_options

        cloud = self._settings.cloud
        kwargs: dict[str, Any] = {
            "retry_total": self._settings.retry.http_retry_total,
            "retry_backoff_max": 30,
            # azure-core's transport defaults are 300 s each; one try must fit the budget
            # table in shared.retry (layer 1), or a hung socket eats the function timeout.
            "connection_timeout": 10,
            "read_timeout": HTTP_TRY_SECONDS,
            "per_call_policies": [self.calls.policy()],
            # a step that may have lost its claim sends no write (shared.fencing), on any try
            "per_retry_policies": [fencing.policy(), unexpected_response_policy()],
            **transport_options(cloud.ca_bundle),
        }
        if self._transport is not None:
            kwargs["transport"] = self._transport
        return kwargs

    def _arm(self) -> dict[str, Any]:
        cloud = self._settings.cloud
        common = self._common()
        return {
            **common,
            "base_url": cloud.arm_endpoint,
            "credential_scopes": [cloud.arm_scope],
            "polling_interval": cloud.lro_poll_seconds,
            "per_retry_policies": [self.pacer.policy(), *common["per_retry_policies"]],
        }

    def _cached(self, kind: str, key: str, build: Any) -> Any:
        cache_key = (kind, key.lower())
        with self._lock:
            client = self._cache.get(cache_key)
        if client is None:
            client = build()
            with self._lock:
                client = self._cache.setdefault(cache_key, client)
        return client

    # -- Key Vault data plane ---------------------------------------------------------------

    def vault_uri(self, vault_id: str, known: Callable[[str], str | None] | None = None) -> str:
        """A Key Vault's data-plane URI, remembered for the life of the process.

        A vault's URI never changes (``https://{name}.vault.azure.net/``: the name is in the
        ARM id and globally unique), so each vault costs at most one lookup per process:
        ``known`` first (the inventory: storage only), else one ARM ``vaults.get``. An
        event's URL host is never used.

        Raises
        ------
        PermanentError
            The vault id is not a Key Vault ARM id, or ARM returned no ``vaultUri``.
        """
        with self._lock:
            uri = self._vault_uris.get(_vault_key(vault_id))
        if uri:
            return uri
        uri = known(vault_id) if known is not None else None
        if uri and not self._in_keyvault_domain(uri):
            # learned from a URL a VM carries: outside the cloud's Key Vault domain it is not
            # a vault Keyguard should send its data-plane calls to; ARM says where it is
            uri = None
        if not uri:
            return self._read_vault(vault_id)[1]
        self.remember_vault_uri(vault_id, str(uri), from_arm=False)
        return str(uri)

    def arm_vault_id(self, vault_id: str, known: Callable[[str], str | None] | None = None) -> str:
        """The vault's ARM id as ARM spells it (an event may spell the resource group or the
        name in another case; what Keyguard writes and reports uses ARM's): remembered from
        any ARM read of the vault in this process (:meth:`vault_uri`'s, the access check's);
        else ``known`` (the inventory: the id as the VMs' ARM models name the vault, storage
        only); else one ``vaults.get``, which serves :meth:`vault_uri` too — so it costs no
        ARM call the URI lookup would not make.

        Raises
        ------
        PermanentError
            The vault id is not a Key Vault ARM id, or ARM returned no ``vaultUri``.
        """
        with self._lock:
            remembered = self._vault_ids.get(_vault_key(vault_id))
        if remembered:
            return remembered
        spelled = known(vault_id) if known is not None else None
        if spelled and _vault_key(spelled) == _vault_key(vault_id):
            return spelled
        return self._read_vault(vault_id)[0]

    def _read_vault(self, vault_id: str) -> tuple[str, str]:
        """(ARM's id, the vaultUri) of a vault from one ARM GET, both remembered."""
        from shared.access.model import VaultRef
        from shared.errors import PermanentError

        ref = VaultRef.parse(vault_id)
        vault = self.keyvault_mgmt(ref.subscription_id).vaults.get(ref.resource_group, ref.name)
        uri = vault.properties.vault_uri if vault.properties else None
        if not uri:
            raise PermanentError(f"vault {vault_id} has no vaultUri", code="NoVaultUri")
        returned = str(vault.id or "")
        arm_id = returned if _vault_key(returned) == _vault_key(vault_id) else vault_id
        self.remember_vault_uri(arm_id, str(uri))
        return arm_id, str(uri)

    def _in_keyvault_domain(self, uri: str) -> bool:
        """Whether ``uri`` is an https URL under the cloud's Key Vault suffix (any, if None)."""
        suffix = self._settings.cloud.keyvault_suffix
        if suffix is None:
            return True
        parsed = urlparse(uri)
        host = (parsed.hostname or "").lower()
        return parsed.scheme == "https" and host.endswith("." + suffix.lower())

    def remember_vault_uri(self, vault_id: str, uri: str, *, from_arm: bool = True) -> None:
        """Record a vault URI read elsewhere (the access check reads the vault anyway);
        ``from_arm``: ``vault_id`` is spelled as ARM returned it (:meth:`arm_vault_id`)."""
        with self._lock:
            self._vault_uris[_vault_key(vault_id)] = uri
            if from_arm:
                self._vault_ids[_vault_key(vault_id)] = vault_id

    def key_client(self, vault_url: str) -> KeyClient:
        """A ``KeyClient`` for one vault (``https://{vault}.vault.azure.net``)."""

        def build() -> KeyClient:
            from azure.keyvault.keys import KeyClient

            return KeyClient(
                vault_url,
                self.credential,
                verify_challenge_resource=self._settings.cloud.keyvault_verify_challenge,
                **self._common(),
            )

        return self._cached("keys", vault_url.rstrip("/"), build)  # type: ignore[no-any-return]

    def secret_client(self, vault_url: str) -> SecretClient:
        """A ``SecretClient`` for one vault."""

        def build() -> SecretClient:
            from azure.keyvault.secrets import SecretClient

            return SecretClient(
                vault_url,
                self.credential,
                verify_challenge_resource=self._settings.cloud.keyvault_verify_challenge,
                **self._common(),
            )

        return self._cached("secrets", vault_url.rstrip("/"), build)  # type: ignore[no-any-return]

    # -- ARM --------------------------------------------------------------------------------

    def keyvault_mgmt(self, subscription_id: str) -> KeyVaultManagementClient:
        """``azure-mgmt-keyvault`` client for one subscription."""

        def build() -> KeyVaultManagementClient:
            from azure.mgmt.keyvault import KeyVaultManagementClient

            return KeyVaultManagementClient(self.credential, subscription_id, **self._arm())

        return self._cached("kvmgmt", subscription_id, build)  # type: ignore[no-any-return]

    def compute(self, subscription_id: str) -> ComputeManagementClient:
        """``azure-mgmt-compute`` client for one subscription."""

        def build() -> ComputeManagementClient:
            from azure.mgmt.compute import ComputeManagementClient

            return ComputeManagementClient(self.credential, subscription_id, **self._arm())

        return self._cached("compute", subscription_id, build)  # type: ignore[no-any-return]

    def authorization(self, subscription_id: str) -> AuthorizationManagementClient:
        """``azure-mgmt-authorization`` client for one subscription."""

        def build() -> AuthorizationManagementClient:
            from azure.mgmt.authorization import AuthorizationManagementClient

            return AuthorizationManagementClient(self.credential, subscription_id, **self._arm())

        return self._cached("authz", subscription_id, build)  # type: ignore[no-any-return]

    def backup(self, subscription_id: str) -> RecoveryServicesBackupClient:
        """``azure-mgmt-recoveryservicesbackup`` client for one subscription."""

        def build() -> RecoveryServicesBackupClient:
            from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

            return RecoveryServicesBackupClient(self.credential, subscription_id, **self._arm())

        return self._cached("backup", subscription_id, build)  # type: ignore[no-any-return]

    # -- Event Grid -------------------------------------------------------------------------

    def alert_publisher(self) -> EventGridPublisherClient | None:
        """Publisher for the alert topic, or None when no topic is configured.

        ``EventGridPublisherClient`` ignores transport options given to its constructor, so
        callers pass :meth:`send_options` to each ``send()``.
        """
        endpoint = self._settings.alert_topic_endpoint
        if endpoint is None:
            return None

        def build() -> EventGridPublisherClient:
            from azure.eventgrid import EventGridPublisherClient

            # The basic-topic client drops constructor options (transport included), so a
            # shared ``transport`` does not reach it; the replay tests build its inner client.
            return EventGridPublisherClient(endpoint, self.credential)

        return self._cached("eventgrid", endpoint, build)  # type: ignore[no-any-return]

    def send_options(self) -> dict[str, Any]:
        """Per-call options for ``EventGridPublisherClient.send`` (CA bundle, retries)."""
        options: dict[str, Any] = {"retry_total": self._settings.retry.http_retry_total}
        if self._settings.cloud.ca_bundle:
            options["connection_verify"] = self._settings.cloud.ca_bundle
        return options


def _vault_key(vault_id: str) -> str:
    """A vault id as the URI memo compares it (ARM ids are case-insensitive)."""
    return vault_id.strip().strip("/").lower()

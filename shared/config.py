"""Keyguard's configuration: one typed, immutable settings object, validated once at startup.

Settings come from app settings (environment variables). :func:`load_settings` reads them,
applies safe defaults (remediation off, dry run off, public Azure) and raises
:class:`~shared.errors.ConfigError` naming the first setting that is missing or invalid.

The cloud profile carries the knobs a sovereign cloud — or the local Azure emulator —
needs: ARM endpoint and audience, Key Vault challenge-resource verification, a CA bundle,
and the LRO polling interval. Production code reaches the local Azure through these
settings alone; there is no test-only branch.

:data:`SETTINGS` lists every setting with its default and meaning; ``infra/`` and the README
are checked against it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

from shared.errors import ConfigError

# --- the catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingSpec:
    """One app setting: its name, default (None = required) and what it is for."""

    name: str
    default: str | None
    doc: str


_S = SettingSpec
SETTINGS: Final[tuple[SettingSpec, ...]] = (
    # scope
    _S("KEYGUARD_TENANT_ID", None, "Entra tenant id of the subscriptions and vaults."),
    _S("KEYGUARD_SUBSCRIPTIONS", None, "Comma-separated subscription ids Keyguard watches."),
    _S(
        "KEYGUARD_VAULTS",
        None,
        "Comma-separated Key Vault ARM ids in scope, or '*' for every vault in the "
        "configured subscriptions.",
    ),
    _S(
        "KEYGUARD_RECOVERY_VAULTS",
        "",
        "Comma-separated Recovery Services vault ARM ids the sweep reads protected items from.",
    ),
    _S(
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID",
        None,
        "Object id, in this tenant, of the Backup Management Service principal "
        "(az ad sp show --id 262044b1-e2ce-469f-a196-69ab7ada62d3 --query id -o tsv); "
        "Backup's application id itself is refused.",
    ),
    _S(
        "KEYGUARD_BACKUP_ROLE_DEFINITION_ID",
        "",
        "Role Keyguard assigns to Backup on RBAC vaults when remediating: a role definition "
        "GUID or id; empty = the custom role 'Keyguard Backup Key Vault Reader' (infra "
        "output). Key Vault Administrator (00482a5a-887f-4fb3-b363-3b7fe8e74483) also works.",
    ),
    # behaviour switches (safe defaults)
    _S(
        "KEYGUARD_REMEDIATION",
        "false",
        "Repair Backup's vault access and re-enable pinned versions.",
    ),
    _S(
        "KEYGUARD_ENABLE_PURGE_PROTECTION",
        "false",
        "Switch purge protection on for vaults holding needed versions (irreversible).",
    ),
    _S(
        "KEYGUARD_DRY_RUN",
        "false",
        "Plan and report, write nothing to Azure: no backup trigger, pin tag write, re-enable, "
        "recover, access repair, purge-protection switch or escrow blob.",
    ),
    _S("KEYGUARD_ESCROW", "false", "Write backup_key/backup_secret blobs of needed objects."),
    # alerts
    _S("KEYGUARD_ALERT_TOPIC_ENDPOINT", "", "Event Grid custom topic endpoint for alerts."),
    _S("KEYGUARD_ALERT_DEDUPE_MINUTES", "60", "Identical alerts within this window are sent once."),
    # pipeline
    _S("KEYGUARD_RETRY_BASE_SECONDS", "30", "First retry delay of a failed work item."),
    _S("KEYGUARD_RETRY_CAP_SECONDS", "3600", "Longest delay between two retries."),
    _S("KEYGUARD_RETRY_BUDGET_HOURS", "24", "A work item is dead-lettered after this long."),
    _S("KEYGUARD_LEASE_SECONDS", "300", "Lease of an in-progress ledger record (at least 15)."),
    _S(
        "KEYGUARD_OPERATION_DEADLINE_SECONDS",
        "120",
        "In-process retry deadline per step; with one HTTP call's retries it must end before "
        "host.json's functionTimeout.",
    ),
    _S("KEYGUARD_COALESCE_SECONDS", "60", "Window in which events for one target coalesce."),
    _S(
        "KEYGUARD_SWEEP_SCHEDULE", "0 0 3 * * *", "NCRONTAB schedule of the sweep (not a TimeSpan)."
    ),
    _S(
        "KEYGUARD_WATCH_SCHEDULE",
        "0 */15 * * * *",
        "NCRONTAB schedule of the watch on needed key/secret versions (not a TimeSpan).",
    ),
    # backups
    _S("KEYGUARD_BACKUP_WINDOW_MINUTES", "15", "Coalescing window: one backup per VM per window."),
    _S("KEYGUARD_BACKUP_DAILY_BUDGET", "4", "On-demand backups per VM per day (1-9)."),
    _S("KEYGUARD_BACKUP_RETENTION_DAYS", "30", "Expiry of on-demand recovery points."),
    _S(
        "KEYGUARD_EXPIRY_WARNING_DAYS",
        "30",
        "Days ahead the sweep warns that a needed key/secret version expires (1-365).",
    ),
    # cloud profile
    _S(
        "KEYGUARD_CLOUD",
        "AzurePublic",
        "AzurePublic, AzureUSGovernment, AzureChinaCloud or Custom.",
    ),
    _S("KEYGUARD_ARM_ENDPOINT", "", "ARM endpoint override (Custom cloud)."),
    _S("KEYGUARD_ARM_AUDIENCE", "", "ARM token audience override (Custom cloud)."),
    _S(
        "KEYGUARD_STORAGE_SUFFIX",
        "",
        "Storage endpoint suffix override (Custom cloud): a DNS suffix, not a URL.",
    ),
    _S(
        "KEYGUARD_KEYVAULT_VERIFY_CHALLENGE",
        "true",
        "Verify that Key Vault's auth challenge names the vault's domain.",
    ),
    _S("KEYGUARD_CA_BUNDLE", "", "CA bundle (PEM path) to trust for Azure endpoints."),
    _S("KEYGUARD_LRO_POLL_SECONDS", "30", "Polling interval of long-running operations."),
    _S("KEYGUARD_HTTP_RETRY_TOTAL", "3", "azure-core retry attempts per HTTP call."),
    # identity and storage (names fixed by the platform)
    _S("AZURE_CLIENT_ID", "", "Client id (GUID) of a user-assigned managed identity (optional)."),
    _S(
        "AzureWebJobsStorage",
        "",
        "Storage connection string (local), or use AzureWebJobsStorage__accountName (Azure).",
    ),
    _S("AzureWebJobsStorage__accountName", "", "Storage account for identity-based access."),
)
SETTING_NAMES: Final[frozenset[str]] = frozenset(s.name for s in SETTINGS)
_DEFAULTS: Final[dict[str, str | None]] = {s.name: s.default for s in SETTINGS}

BACKUP_MANAGEMENT_APP_ID_PUBLIC: Final = "262044b1-e2ce-469f-a196-69ab7ada62d3"
BACKUP_MANAGEMENT_APP_ID_USGOV: Final = "ff281ffe-705c-4f53-9f37-a40e6f2c68f3"
MAX_ON_DEMAND_BACKUPS_PER_DAY: Final = 9
#: Shortest accepted ``KEYGUARD_LEASE_SECONDS``. A running step renews its lease every third
#: of it and stops before its next Azure write once renewals have failed for two thirds
#: (``shared.worker``). At 15 s that is a renewal every 5 s — time for one Table request and
#: an azure-core retry of it, so one slow renewal does not stop a live step — and a fenced step
#: stops 5 s before a second worker may take its claim. A 1 s lease would renew three times a
#: second and hand a live step's claim to another worker on any storage stall of a second.
MIN_LEASE_SECONDS: Final = 15.0
#: host.json beside the app (the deployed package's root): its ``functionTimeout`` bounds a step.
HOST_JSON: Final = Path(__file__).resolve().parent.parent / "host.json"
#: Flex Consumption's function timeout when host.json sets none (30 min).
DEFAULT_FUNCTION_TIMEOUT_SECONDS: Final = 1800.0


# --- the typed objects --------------------------------------------------------------------


@dataclass(frozen=True)
class CloudProfile:
    """Endpoints and client behaviour for one Azure cloud."""

    name: str
    arm_endpoint: str
    arm_audience: str
    storage_suffix: str
    keyvault_verify_challenge: bool = True
    ca_bundle: str | None = None
    lro_poll_seconds: float = 30.0
    #: Backup Management Service's first-party application id in this cloud (None: not
    #: documented — Azure China, facts §4.1 — or a Custom cloud); alerts name it for the
    #: object-id lookup, the principal check refuses it.
    backup_management_app_id: str | None = BACKUP_MANAGEMENT_APP_ID_PUBLIC
    #: Key Vault's DNS suffix (``vault.azure.net``); None for a Custom cloud. A vault URI
    #: learned from the inventory outside it is not used (``AzureClients.vault_uri``).
    keyvault_suffix: str | None = "vault.azure.net"

    @property
    def arm_scope(self) -> str:
        """The OAuth scope for ARM tokens (audience + ``/.default``)."""
        return self.arm_audience.rstrip("/") + "/.default"


KNOWN_CLOUDS: Final[dict[str, CloudProfile]] = {
    "AzurePublic": CloudProfile(
        name="AzurePublic",
        arm_endpoint="https://management.azure.com",
        arm_audience="https://management.azure.com",
        storage_suffix="core.windows.net",
    ),
    "AzureUSGovernment": CloudProfile(
        name="AzureUSGovernment",
        arm_endpoint="https://management.usgovcloudapi.net",
        arm_audience="https://management.usgovcloudapi.net",
        storage_suffix="core.usgovcloudapi.net",
        backup_management_app_id=BACKUP_MANAGEMENT_APP_ID_USGOV,
        keyvault_suffix="vault.usgovcloudapi.net",
    ),
    # Azure China (21Vianet): ARM as azure-mgmt-core's get_arm_endpoints(AzureChinaCloud);
    # Key Vault and storage suffixes as the Azure CLI's AzureChinaCloud profile. Backup's
    # application id there is not documented (facts §4.1), so none is assumed.
    "AzureChinaCloud": CloudProfile(
        name="AzureChinaCloud",
        arm_endpoint="https://management.chinacloudapi.cn",
        arm_audience="https://management.chinacloudapi.cn",
        storage_suffix="core.chinacloudapi.cn",
        backup_management_app_id=None,
        keyvault_suffix="vault.azure.cn",
    ),
}


@dataclass(frozen=True)
class StorageSettings:
    """How to reach Keyguard's own storage account (queues, tables, blobs).

    Exactly one of ``connection_string`` (local, Azurite) or ``account_name`` (identity-based,
    Azure) is set.
    """

    connection_string: str | None = None
    account_name: str | None = None
    suffix: str = "core.windows.net"

    def endpoint(self, service: str) -> str:
        """The ``https://{account}.{service}.{suffix}`` endpoint for identity-based access."""
        return f"https://{self.account_name}.{service}.{self.suffix}"


@dataclass(frozen=True)
class RetrySettings:
    """Durable (queue-level) retry schedule and the in-process operation deadline."""

    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    budget_seconds: float = 24 * 3600.0
    lease_seconds: float = 300.0
    operation_deadline_seconds: float = 120.0
    http_retry_total: int = 3


@dataclass(frozen=True)
class BackupSettings:
    """On-demand backup policy."""

    window_minutes: int = 15
    daily_budget: int = 4
    retention_days: int = 30
    dry_run: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything Keyguard is configured with. Build it with :func:`load_settings`."""

    tenant_id: str
    subscriptions: frozenset[str]
    #: Lower-cased Key Vault ARM ids in scope; empty with ``all_vaults`` for '*'.
    vaults: frozenset[str]
    all_vaults: bool
    recovery_vaults: tuple[str, ...]
    backup_principal_object_id: str
    storage: StorageSettings
    cloud: CloudProfile
    retry: RetrySettings = field(default_factory=RetrySettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    remediation: bool = False
    enable_purge_protection: bool = False
    escrow: bool = False
    alert_topic_endpoint: str | None = None
    alert_dedupe_minutes: int = 60
    coalesce_seconds: int = 60
    managed_identity_client_id: str | None = None
    #: Role definition GUID or id for Backup's RBAC repair; None = the Keyguard custom role.
    backup_role_definition_id: str | None = None
    #: ``KEYGUARD_WATCH_SCHEDULE``: when the watch re-checks the needed versions.
    watch_schedule: str = "0 */15 * * * *"
    #: ``KEYGUARD_EXPIRY_WARNING_DAYS``: how far ahead foresight warns of a needed expiry.
    expiry_warning_days: int = 30

    @property
    def dry_run(self) -> bool:
        """``KEYGUARD_DRY_RUN``: plan and report everything, write nothing to Azure."""
        return self.backup.dry_run

    @property
    def may_remediate(self) -> bool:
        """Repairs (access, re-enable, recover) are switched on and this is no dry run."""
        return self.remediation and not self.dry_run

    @property
    def may_enable_purge_protection(self) -> bool:
        """Purge protection may be switched on: its own switch, and no dry run."""
        return self.enable_purge_protection and not self.dry_run

    def vault_in_scope(self, vault_id: str) -> bool:
        """True when a Key Vault ARM id is one Keyguard may act on (never a non-ASCII id:
        ``str.lower()`` folds e.g. a Kelvin sign into ``k``, which ARM does not)."""
        if not vault_id.isascii():
            return False
        vid = vault_id.strip().rstrip("/").lower()
        if not vid.startswith("/subscriptions/"):
            return False
        sub = vid.split("/")[2]
        if sub not in self.subscriptions:
            return False
        return self.all_vaults or vid in self.vaults

    def subscription_in_scope(self, subscription_id: str) -> bool:
        """True when a subscription id is configured."""
        return subscription_id.strip().lower() in self.subscriptions


# --- parsing ------------------------------------------------------------------------------


class _Reader:
    """Reads and validates settings from a mapping, naming the setting on every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            default = _DEFAULTS.get(name)
            if default is None:
                raise ConfigError(name, "is required but not set")
            return default
        return value.strip()

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        return value or None

    def boolean(self, name: str) -> bool:
        value = self.raw(name).lower()
        if value in {"true", "1", "yes", "on"}:
            return True
        if value in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(name, f"must be true or false, not {value!r}")

    def number(self, name: str, *, low: float, high: float) -> float:
        value = self.raw(name)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, not {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(name, f"must be between {low:g} and {high:g}, not {value}")
        return number

    def integer(self, name: str, *, low: int, high: int) -> int:
        number = self.number(name, low=low, high=high)
        if number != int(number):
            raise ConfigError(name, f"must be a whole number, not {self.raw(name)}")
        return int(number)

    def guid(self, name: str) -> str:
        value = self.raw(name).lower()
        if not _is_guid(value):
            raise ConfigError(name, f"must be a GUID, not {value!r}")
        return value

    def optional_guid(self, name: str) -> str | None:
        return self.guid(name) if self.text(name) is not None else None

    def guid_list(self, name: str) -> frozenset[str]:
        items = [v.strip().lower() for v in self.raw(name).split(",") if v.strip()]
        if not items:
            raise ConfigError(name, "must list at least one id")
        for item in items:
            if not _is_guid(item):
                raise ConfigError(name, f"{item!r} is not a GUID")
        return frozenset(items)

    def https_url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme != "https" or not parsed.netloc:
            raise ConfigError(name, f"must be an https:// URL, not {value!r}")
        return value.rstrip("/")


def _is_guid(value: str) -> bool:
    parts = value.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
        return False
    return all(c in "0123456789abcdef" for c in "".join(parts))


#: Azure's resource group names: 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending
#: in '.' (so neither '.' nor '..').
_RESOURCE_GROUP: Final = re.compile(r"[-\w.()]{0,89}[-\w()]")
#: Key Vault and Recovery Services vault names: ASCII letters, digits and hyphens.
_VAULT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,49}")


def _arm_ids(reader: _Reader, name: str, provider_type: str, subs: frozenset[str]) -> list[str]:
    """The ``/subscriptions/{sub}/resourceGroups/{rg}/providers/{type}/{name}`` ids in
    setting ``name``: nothing before ``/subscriptions``, a real resource group and vault name
    (an id Keyguard compares with event subjects must be one ARM can return)."""
    ids = []
    for raw in reader.raw(name).split(","):
        rid = raw.strip().rstrip("/")
        if not rid:
            continue
        if not rid.isascii():  # str.lower() would fold e.g. a Kelvin sign 'K' into 'k'
            raise ConfigError(name, f"{rid!r} is not ASCII: ARM ids Keyguard compares must be")
        parts = rid.split("/")
        ok = (
            len(parts) == 9
            and parts[0] == ""
            and parts[1].lower() == "subscriptions"
            and parts[3].lower() == "resourcegroups"
            and parts[5].lower() == "providers"
            and f"{parts[6]}/{parts[7]}".lower() == provider_type.lower()
        )
        if not ok:
            raise ConfigError(name, f"{rid!r} is not a {provider_type} resource id")
        if not _RESOURCE_GROUP.fullmatch(parts[4]):
            raise ConfigError(name, f"{rid!r}: {parts[4]!r} is not a resource group name")
        if not _VAULT_NAME.fullmatch(parts[8]):
            raise ConfigError(name, f"{rid!r}: {parts[8]!r} is not a vault name")
        if parts[2].lower() not in subs:
            raise ConfigError(name, f"{rid!r} is outside KEYGUARD_SUBSCRIPTIONS")
        ids.append(rid)
    return ids


def _backup_principal(reader: _Reader) -> str:
    """Backup's service principal *object* id; its well-known *application* id is refused
    (a grant to it would name no principal of the tenant, yet report "repaired")."""
    name = "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"
    value = reader.guid(name)
    if value in (BACKUP_MANAGEMENT_APP_ID_PUBLIC, BACKUP_MANAGEMENT_APP_ID_USGOV):
        raise ConfigError(
            name,
            f"{value} is Azure Backup's application id, not its service principal's object id "
            f"in this tenant: az ad sp show --id {value} --query id -o tsv",
        )
    return value


def _sweep_schedule(reader: _Reader, name: str = "KEYGUARD_SWEEP_SCHEDULE") -> str:
    """An NCRONTAB expression that fires (the sweep's timer binding reads the setting itself;
    the watch's schedule is read here and handed to its binding by ``function_app``)."""
    from shared.ncrontab import CronError, IntervalSchedule, parse_schedule, utcnow

    value = reader.raw(name)
    try:
        schedule = parse_schedule(value)
        if isinstance(schedule, IntervalSchedule):
            raise ConfigError(
                name,
                f"{value!r} is a TimeSpan, which only App Service plans run; "
                "use an NCRONTAB expression (Flex Consumption)",
            )
        schedule.next_after(utcnow())
    except CronError as exc:
        raise ConfigError(name, f"is not a valid NCRONTAB expression: {exc}") from None
    return value


def _storage_suffix(reader: _Reader) -> str | None:
    """A DNS suffix such as ``core.windows.net``: no scheme, path or port (it is joined into
    ``https://{account}.{service}.{suffix}``)."""
    name = "KEYGUARD_STORAGE_SUFFIX"
    value = reader.text(name)
    if value is None:
        return None
    labels = value.split(".")
    if len(labels) < 2 or not all(
        re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", la) for la in labels
    ):
        raise ConfigError(name, f"must be a DNS suffix such as core.windows.net, not {value!r}")
    return value.lower()


def _ca_bundle(reader: _Reader) -> str | None:
    """A readable file holding at least one PEM certificate (``ssl`` loads it as
    ``requests`` would)."""
    import ssl

    name = "KEYGUARD_CA_BUNDLE"
    path = reader.text(name)
    if path is None:
        return None
    if not os.path.isfile(path):
        raise ConfigError(name, f"file {path!r} does not exist")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(name, f"file {path!r} is not a PEM CA bundle ({exc})") from None
    return path


def function_timeout_seconds(host_json: Path = HOST_JSON) -> float:
    """host.json's ``functionTimeout`` (``[d.]hh:mm:ss``; ``-1`` = unbounded) in seconds;
    :data:`DEFAULT_FUNCTION_TIMEOUT_SECONDS` when the file or the field is absent.

    Raises
    ------
    ConfigError
        When host.json is unreadable or the value is not a TimeSpan.
    """
    try:
        config = json.loads(host_json.read_text())
    except FileNotFoundError:
        return DEFAULT_FUNCTION_TIMEOUT_SECONDS
    except (OSError, ValueError) as exc:
        raise ConfigError("host.json", f"cannot be read: {exc}") from None
    value = str(config.get("functionTimeout", "")).strip() if isinstance(config, dict) else ""
    if not value:
        return DEFAULT_FUNCTION_TIMEOUT_SECONDS
    if value == "-1":
        return float("inf")
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", value)
    if match is None:
        raise ConfigError("host.json", f"functionTimeout {value!r} is not [d.]hh:mm:ss")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _check_invocation_fits(retry: RetrySettings, host_json: Path) -> None:
    """Layers 1+2 of one step (``shared.retry.layer_budgets``) must end before the function
    timeout, or the host kills a step that is still retrying (and its outcome is never stored)."""
    from shared.retry import layer_budgets

    timeout = function_timeout_seconds(host_json)
    budgets = layer_budgets(retry, function_timeout=timeout)
    if budgets.fits:
        return
    if budgets.http_call >= timeout:
        raise ConfigError(
            "KEYGUARD_HTTP_RETRY_TOTAL",
            f"{retry.http_retry_total} retries make one HTTP call last up to "
            f"{budgets.http_call:g} s, beyond host.json's functionTimeout ({timeout:g} s)",
        )
    raise ConfigError(
        "KEYGUARD_OPERATION_DEADLINE_SECONDS",
        f"{retry.operation_deadline_seconds:g} s plus the call in flight ({budgets.http_call:g} s) "
        f"does not end before host.json's functionTimeout ({timeout:g} s)",
    )


def _role_definition_id(reader: _Reader, name: str) -> str | None:
    """A role definition GUID, or an id ending ``/roleDefinitions/{guid}``."""
    value = reader.text(name)
    if value is None:
        return None
    value = value.rstrip("/")
    head, _, guid = value.rpartition("/")
    if head and not head.lower().endswith("/providers/microsoft.authorization/roledefinitions"):
        raise ConfigError(name, f"{value!r} is not a role definition id")
    if not _is_guid(guid.lower()):
        raise ConfigError(name, f"{value!r} does not end in a role definition GUID")
    return value


def _cloud(reader: _Reader) -> CloudProfile:
    name = reader.raw("KEYGUARD_CLOUD")
    arm = reader.https_url("KEYGUARD_ARM_ENDPOINT")
    audience = reader.https_url("KEYGUARD_ARM_AUDIENCE")
    suffix = _storage_suffix(reader)
    if name in KNOWN_CLOUDS:
        base = KNOWN_CLOUDS[name]
    elif name == "Custom":
        if arm is None:
            raise ConfigError("KEYGUARD_ARM_ENDPOINT", "is required when KEYGUARD_CLOUD=Custom")
        base = CloudProfile(
            name="Custom",
            arm_endpoint=arm,
            arm_audience=audience or KNOWN_CLOUDS["AzurePublic"].arm_audience,
            storage_suffix=suffix or KNOWN_CLOUDS["AzurePublic"].storage_suffix,
            backup_management_app_id=None,
            keyvault_suffix=None,
        )
    else:
        choices = ", ".join([*KNOWN_CLOUDS, "Custom"])
        raise ConfigError("KEYGUARD_CLOUD", f"must be one of {choices}, not {name!r}")
    ca_bundle = _ca_bundle(reader)
    return CloudProfile(
        name=base.name,
        arm_endpoint=arm or base.arm_endpoint,
        arm_audience=audience or base.arm_audience,
        storage_suffix=suffix or base.storage_suffix,
        keyvault_verify_challenge=reader.boolean("KEYGUARD_KEYVAULT_VERIFY_CHALLENGE"),
        ca_bundle=ca_bundle,
        lro_poll_seconds=reader.number("KEYGUARD_LRO_POLL_SECONDS", low=0.01, high=600),
        backup_management_app_id=base.backup_management_app_id,
        keyvault_suffix=base.keyvault_suffix,
    )


def _storage(reader: _Reader, suffix: str) -> StorageSettings:
    conn = reader.text("AzureWebJobsStorage")
    account = reader.text("AzureWebJobsStorage__accountName")
    if conn and account:
        raise ConfigError("AzureWebJobsStorage", "set either it or __accountName, not both")
    if conn:
        if conn != "UseDevelopmentStorage=true" and "AccountName=" not in conn:
            raise ConfigError("AzureWebJobsStorage", "is not a storage connection string")
        return StorageSettings(connection_string=conn, suffix=suffix)
    if account:
        return StorageSettings(account_name=account, suffix=suffix)
    raise ConfigError("AzureWebJobsStorage", "is required (or AzureWebJobsStorage__accountName)")


def load_settings(env: Mapping[str, str] | None = None, *, host_json: Path = HOST_JSON) -> Settings:
    """Read and validate every setting.

    Parameters
    ----------
    env:
        The settings to read; defaults to ``os.environ``.
    host_json:
        The app's host.json, whose ``functionTimeout`` a step's retries must fit.

    Returns
    -------
    Settings
        The validated, immutable settings.

    Raises
    ------
    ConfigError
        Naming the first setting that is missing or invalid.
    """
    reader = _Reader(os.environ if env is None else env)
    subscriptions = reader.guid_list("KEYGUARD_SUBSCRIPTIONS")
    vault_setting = reader.raw("KEYGUARD_VAULTS")
    all_vaults = vault_setting == "*"
    vaults = (
        frozenset()
        if all_vaults
        else frozenset(
            v.lower()
            for v in _arm_ids(reader, "KEYGUARD_VAULTS", "Microsoft.KeyVault/vaults", subscriptions)
        )
    )
    if not all_vaults and not vaults:
        raise ConfigError("KEYGUARD_VAULTS", "must list vault ids or be '*'")
    cloud = _cloud(reader)
    retry = RetrySettings(
        base_seconds=reader.number("KEYGUARD_RETRY_BASE_SECONDS", low=0.01, high=86400),
        cap_seconds=reader.number("KEYGUARD_RETRY_CAP_SECONDS", low=0.01, high=7 * 86400),
        budget_seconds=reader.number("KEYGUARD_RETRY_BUDGET_HOURS", low=0.0001, high=7 * 24) * 3600,
        lease_seconds=reader.number("KEYGUARD_LEASE_SECONDS", low=MIN_LEASE_SECONDS, high=86400),
        operation_deadline_seconds=reader.number(
            "KEYGUARD_OPERATION_DEADLINE_SECONDS", low=1, high=3600
        ),
        http_retry_total=reader.integer("KEYGUARD_HTTP_RETRY_TOTAL", low=0, high=10),
    )
    if retry.cap_seconds < retry.base_seconds:
        raise ConfigError("KEYGUARD_RETRY_CAP_SECONDS", "must not be below the retry base")
    _check_invocation_fits(retry, host_json)
    _sweep_schedule(reader)
    watch_schedule = _sweep_schedule(reader, "KEYGUARD_WATCH_SCHEDULE")
    backup = BackupSettings(
        window_minutes=reader.integer("KEYGUARD_BACKUP_WINDOW_MINUTES", low=1, high=1440),
        daily_budget=reader.integer(
            "KEYGUARD_BACKUP_DAILY_BUDGET", low=1, high=MAX_ON_DEMAND_BACKUPS_PER_DAY
        ),
        retention_days=reader.integer("KEYGUARD_BACKUP_RETENTION_DAYS", low=1, high=99),
        dry_run=reader.boolean("KEYGUARD_DRY_RUN"),
    )
    return Settings(
        tenant_id=reader.guid("KEYGUARD_TENANT_ID"),
        subscriptions=subscriptions,
        vaults=vaults,
        all_vaults=all_vaults,
        recovery_vaults=tuple(
            _arm_ids(
                reader,
                "KEYGUARD_RECOVERY_VAULTS",
                "Microsoft.RecoveryServices/vaults",
                subscriptions,
            )
        ),
        backup_principal_object_id=_backup_principal(reader),
        storage=_storage(reader, cloud.storage_suffix),
        cloud=cloud,
        retry=retry,
        backup=backup,
        remediation=reader.boolean("KEYGUARD_REMEDIATION"),
        enable_purge_protection=reader.boolean("KEYGUARD_ENABLE_PURGE_PROTECTION"),
        escrow=reader.boolean("KEYGUARD_ESCROW"),
        alert_topic_endpoint=reader.https_url("KEYGUARD_ALERT_TOPIC_ENDPOINT"),
        alert_dedupe_minutes=reader.integer("KEYGUARD_ALERT_DEDUPE_MINUTES", low=0, high=10080),
        coalesce_seconds=reader.integer("KEYGUARD_COALESCE_SECONDS", low=0, high=86400),
        managed_identity_client_id=reader.optional_guid("AZURE_CLIENT_ID"),
        backup_role_definition_id=_role_definition_id(reader, "KEYGUARD_BACKUP_ROLE_DEFINITION_ID"),
        watch_schedule=watch_schedule,
        expiry_warning_days=reader.integer("KEYGUARD_EXPIRY_WARNING_DAYS", low=1, high=365),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once (the first invocation validates them)."""
    return load_settings()

"""Offline checks of infra/: every Bicep file parses, checkov's Azure rules pass, and the Bicep
agrees with the app (event types, operation names, storage names, function names, settings).

No Bicep compiler exists offline, so the parse tree is read with pycep-parser (the parser
checkov itself uses) and the tests also check what the compiler would catch first: module
paths and module parameters. The app side is imported, never copied: shared/names.py,
shared/config.py SETTINGS, shared/events/catalog.py and shared/access/permissions.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from shared import names
from shared.access.permissions import KEY_DATA_ACTIONS, SECRET_DATA_ACTIONS
from shared.config import SETTINGS
from shared.events.catalog import ARM_EVENT_TYPES, ARM_OPERATIONS, KEYVAULT_EVENT_TYPES
from tests.infra.bicep import (
    INFRA,
    MAIN,
    Evaluator,
    bicep_files,
    body,
    checkov_executable,
    module_call,
    module_path,
    parse,
    resources_of_type,
    string_leaves,
    variable,
)

#: SETTINGS that make no sense in Azure, each with why.
NOT_IN_AZURE = {
    "KEYGUARD_CA_BUNDLE": "Azure endpoints use public CAs; only the local emulator needs a bundle",
    "AzureWebJobsStorage": "a connection string needs shared keys, which the account disables; "
    "Azure uses AzureWebJobsStorage__accountName with the identity",
}
#: Settings the platform needs beyond SETTINGS, each with why.
PLATFORM_EXTRAS = {
    "AzureWebJobsStorage__credential": "identity-based host storage with a user-assigned identity",
    "AzureWebJobsStorage__clientId": "which user-assigned identity the host uses for storage",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the host sends telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra ID telemetry (local auth is disabled)",
}
#: SETTINGS whose value is derived from other parameters or from deployed resources.
DERIVED = {
    "KEYGUARD_TENANT_ID",
    "KEYGUARD_SUBSCRIPTIONS",
    "KEYGUARD_VAULTS",
    "KEYGUARD_RECOVERY_VAULTS",
    "KEYGUARD_ALERT_TOPIC_ENDPOINT",
    "KEYGUARD_BACKUP_ROLE_DEFINITION_ID",
    "AZURE_CLIENT_ID",
    "AzureWebJobsStorage__accountName",
}
#: Built-in roles Keyguard must never hold: Owner, Contributor, User Access Administrator, Key
#: Vault Administrator / Crypto Officer / Secrets Officer / Secrets User.
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "4633458b-17de-408a-b874-0445c86b69e6",
}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _module(name: str) -> Path:
    return INFRA / "modules" / name


# --- parsing and structure ----------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_every_bicep_file_parses_into_declarations(path: Path) -> None:
    tree = parse(path)
    declared = {**tree.get("resources", {}), **tree.get("modules", {})}
    assert declared, f"{path.name} declares no resource or module"
    for name, declaration in declared.items():
        assert body(declaration).get("name"), f"{path.name}: {name} has no name"
    for name, param in tree.get("parameters", {}).items():
        assert param["type"] in {"string", "int", "bool", "array", "object"}, (path.name, name)


def test_infra_tree_is_complete() -> None:
    found = {p.relative_to(INFRA).as_posix() for p in bicep_files()}
    assert "main.bicep" in found
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"
    referenced = {
        module_path(p, decl).relative_to(INFRA).as_posix()
        for p in bicep_files()
        for decl in parse(p).get("modules", {}).values()
    }
    assert found - referenced == {"main.bicep"}, "every module is used, nothing else lies around"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_module_calls_pass_exactly_the_declared_parameters(path: Path) -> None:
    for name, declaration in parse(path).get("modules", {}).items():
        target = module_path(path, declaration)
        assert target.is_file(), f"{path.name}: module {name} -> missing {target}"
        declared = parse(target).get("parameters", {})
        passed = set(body(declaration).get("params", {}))
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        assert passed <= set(declared), f"{name}: unknown params {passed - set(declared)}"
        assert required <= passed, f"{name}: missing params {required - passed}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_no_unused_parameters_or_variables(path: Path) -> None:
    # What the Bicep linter's no-unused-params / no-unused-vars rules would report.
    tree = parse(path)
    # Comments and object keys ("name: value" at a line start) are not uses.
    code = "\n".join(
        re.sub(r"^\s*'?[\w.-]+'?\s*:(?!\S)", "", line)
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("//")
    )
    for kind in ("parameters", "variables"):
        for name in tree.get(kind, {}):
            uses = len(re.findall(rf"(?<![\w.']){re.escape(name)}\b(?!')", code))
            assert uses >= 2, f"{path.name}: {kind[:-1]} {name} is never used"


def test_example_parameters_cover_main() -> None:
    example = json.loads((INFRA / "main.example.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    assert set(example) <= set(declared), set(example) - set(declared)
    assert required <= set(example), required - set(example)
    for vault in example["keyVaults"]["value"]:
        assert set(vault) == {"id", "location", "rbac"}
        assert vault["id"].split("/")[6:8] == ["Microsoft.KeyVault", "vaults"]


# --- checkov ------------------------------------------------------------------------------


def _checkov(directory: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            checkov_executable(),
            "--directory",
            str(directory),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        # No PyPI version lookup: the check runs fully offline.
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert isinstance(report, dict), "expected one (bicep) report"
    assert report["check_type"] == "bicep"
    return report


#: A file checkov cannot parse, scanned with infra/ to prove parse failures are reported:
#: checkov exits 0 on them, so the tests must read its parsing_errors.
CANARY = "zz-unparsable-canary.bicep"


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over a copy of infra/ plus the unparsable canary (one run: seconds)."""
    copy = tmp_path_factory.mktemp("checkov") / "infra"
    shutil.copytree(INFRA, copy)
    (copy / CANARY).write_text("resource x 'Microsoft.Foo/bars@2020-01-01' = {\n")
    started = time.monotonic()
    report = _checkov(copy)
    report["elapsed_seconds"] = time.monotonic() - started
    return report


def test_checkov_finds_no_unsuppressed_failure(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['file_path']} {c['resource']}: {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["passed"] > 20


def test_checkov_suppressions_give_reasons(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "the suppressions in infra/ are expected to be reported as skipped"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 8, f"{check['check_id']} in {check['file_path']}: {reason!r}"


def test_checkov_parsed_every_infra_file(checkov_report: dict[str, Any]) -> None:
    # Only the canary failed to parse: checkov lists such files (and still exits 0).
    assert [Path(p).name for p in checkov_report["results"]["parsing_errors"]] == [CANARY]
    checked = {
        Path(c["file_path"]).name
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for c in checkov_report["results"][kind]
    }
    assert {"storage.bicep", "functionapp.bicep", "alert-topic.bicep"} <= checked
    assert checkov_report["elapsed_seconds"] < 120


# --- drift: events, names, settings --------------------------------------------------------


def test_keyvault_subscription_matches_catalog() -> None:
    target, params = module_call(MAIN, "keyVaultTopics")
    assert target == _module("keyvault-topic.bicep")
    assert variable(MAIN, params["includedEventTypes"]) == list(KEYVAULT_EVENT_TYPES)
    assert parse(target)["resources"]["topic"]["config"]["properties"]["topicType"] == (
        "Microsoft.KeyVault.vaults"
    )
    sub = body(parse(target)["resources"]["subscription"])["properties"]
    assert sub["filter"]["includedEventTypes"] == "includedEventTypes"
    assert "functions/${functionNames.keyvaultEvents}" in params["functionResourceId"]
    assert variable(MAIN, "functionNames")["keyvaultEvents"] == names.FN_KEYVAULT_EVENTS


def test_arm_subscription_matches_catalog() -> None:
    target, params = module_call(MAIN, "subscriptionTopics")
    assert target == _module("subscription-topic.bicep")
    assert variable(MAIN, params["includedEventTypes"]) == list(ARM_EVENT_TYPES)
    operations = variable(MAIN, params["operationNames"])
    assert operations == list(ARM_OPERATIONS)
    assert len(operations) <= 25, "Event Grid allows 25 advanced-filter values per subscription"
    topic = parse(target)["resources"]["topic"]["config"]
    assert topic["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    assert topic["location"] == "global"
    event_filter = body(parse(target)["resources"]["subscription"])["properties"]["filter"]
    assert event_filter["includedEventTypes"] == "includedEventTypes"
    assert event_filter["advancedFilters"] == [
        {"operatorType": "StringIn", "key": "data.operationName", "values": "operationNames"}
    ]
    assert "functions/${functionNames.armEvents}" in params["functionResourceId"]
    assert variable(MAIN, "functionNames")["armEvents"] == names.FN_ARM_EVENTS


@pytest.mark.parametrize("module", ["keyvault-topic.bicep", "subscription-topic.bicep"])
def test_event_subscriptions_deliver_retry_and_dead_letter(module: str) -> None:
    tree = parse(_module(module))
    (sub,) = resources_of_type(
        _module(module), "Microsoft.EventGrid/systemTopics/eventSubscriptions"
    ).values()
    props = sub["properties"]
    assert props["destination"]["endpointType"] == "AzureFunction"
    assert props["destination"]["properties"]["resourceId"] == "functionResourceId"
    assert props["retryPolicy"] == {
        "maxDeliveryAttempts": "maxDeliveryAttempts",
        "eventTimeToLiveInMinutes": "eventTimeToLiveInMinutes",
    }
    dead_letter = props["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"]["properties"]["blobContainerName"] == (
        "deadLetterContainerName"
    )
    assert tree["resources"]["topic"]["config"]["identity"] == {"type": "SystemAssigned"}
    # The topic's identity can write to the dead-letter container, and only there.
    access = tree["modules"]["deadLetterAccess"]
    assert module_path(_module(module), access) == _module("deadletter-access.bicep")
    assert body(access)["params"]["containerName"] == "deadLetterContainerName"
    (grant,) = resources_of_type(
        _module("deadletter-access.bicep"), "Microsoft.Authorization/roleAssignments"
    ).values()
    assert grant["scope"] == "container"
    # ... and a dead letter raises an alert, from a rule next to the topic.
    alert = tree["modules"]["deadLetterAlert"]
    assert module_path(_module(module), alert) == _module("deadletter-alert.bicep")
    (rule,) = resources_of_type(
        _module("deadletter-alert.bicep"), "Microsoft.Insights/metricAlerts"
    ).values()
    (criterion,) = rule["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "DeadLetteredCount"
    assert criterion["metricNamespace"] == "Microsoft.EventGrid/systemTopics"


def test_poison_and_failure_alerts_watch_the_app() -> None:
    path = _module("alert-rules.bicep")
    (poison,) = resources_of_type(path, "Microsoft.Insights/scheduledQueryRules").values()
    (query,) = poison["properties"]["criteria"]["allOf"]
    assert "${poisonFunctionName}" in query["query"]
    assert poison["properties"]["scopes"] == ["appInsightsId"]
    metric_alerts = resources_of_type(path, "Microsoft.Insights/metricAlerts")
    (failures,) = metric_alerts.values()
    (criterion,) = failures["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "requests/failed"


def test_storage_names_match_names_module() -> None:
    target, params = module_call(MAIN, "storage")
    assert variable(MAIN, params["queueNames"]) == list(names.ALL_QUEUES)
    assert variable(MAIN, params["tableNames"]) == list(names.ALL_TABLES)
    assert variable(MAIN, params["deadLetterContainerName"]) == (
        names.EVENTGRID_DEADLETTER_CONTAINER
    )
    assert variable(MAIN, params["escrowContainerName"]) == names.ESCROW_CONTAINER
    containers = resources_of_type(
        target, "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert {c["name"] for c in containers.values()} >= {
        "deadLetterContainerName",
        "escrowContainerName",
    }
    assert body(parse(target)["resources"]["queues"])["name"] == "queueName"
    assert parse(target)["resources"]["queues"]["config"]["loop_type"]["detail"]["array_name"] == (
        "queueNames"
    )
    assert parse(target)["resources"]["tables"]["config"]["loop_type"]["detail"]["array_name"] == (
        "tableNames"
    )
    account = parse(target)["resources"]["account"]["config"]["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    policy = body(parse(target)["resources"]["escrowImmutability"])["properties"]
    assert policy["immutabilityPeriodSinceCreationInDays"] == "escrowImmutabilityDays"


def test_function_and_alert_names_match_names_module() -> None:
    fn_names = {v for k, v in vars(names).items() if k.startswith("FN_")}
    assert set(variable(MAIN, "functionNames").values()) == fn_names
    assert variable(MAIN, "alertTypePrefix") == names.ALERT_TYPE_PREFIX
    _, params = module_call(MAIN, "alertRules")
    assert string_leaves(params["poisonFunctionName"]) == ["functionNames", "poisonDrain"]
    assert variable(MAIN, "functionNames")["poisonDrain"] == names.FN_POISON_DRAIN


def _app_settings() -> tuple[dict[str, Any], dict[str, Any]]:
    keyguard = variable(MAIN, "keyguardSettings")
    target, params = module_call(MAIN, "functionApp")
    assert params["keyguardSettings"] == "keyguardSettings"
    platform = {s["name"]: s["value"] for s in variable(target, "platformSettingList")}
    site = resources_of_type(target, "Microsoft.Web/sites")["site"]
    app_settings = site["properties"]["siteConfig"]["appSettings"]
    assert string_leaves(app_settings) == ["keyguardSettingList", "platformSettingList"]
    return keyguard, platform


def test_app_settings_are_exactly_the_settings_catalogue() -> None:
    keyguard, platform = _app_settings()
    assert not set(keyguard) & set(platform), "a setting is set twice"
    setting_names = {s.name for s in SETTINGS}
    assert set(NOT_IN_AZURE) <= setting_names
    assert (set(keyguard) | set(platform)) - set(PLATFORM_EXTRAS) == setting_names - set(
        NOT_IN_AZURE
    )
    assert set(PLATFORM_EXTRAS) <= set(platform)


def test_app_setting_defaults_match_the_settings_catalogue() -> None:
    keyguard, platform = _app_settings()
    params = parse(MAIN)["parameters"]
    variables = parse(MAIN)["variables"]
    for spec in SETTINGS:
        if spec.name in NOT_IN_AZURE:
            continue
        value = keyguard.get(spec.name, platform.get(spec.name))
        if spec.name in DERIVED:
            assert (
                isinstance(value, dict)
                or value in params
                or value in variables
                or (value in parse(_module("functionapp.bicep"))["parameters"])
            ), f"{spec.name} should be derived, not the literal {value!r}"
            continue
        assert value in params, f"{spec.name} should come from a main.bicep parameter"
        param = params[value]
        assert param["type"] == "string", spec.name
        if spec.default is None:
            assert param.get("default") is None, f"{spec.name} is required: no default"
        else:
            assert param.get("default") == spec.default, spec.name
        allowed = [d["argument"] for d in param["decorators"] if d["type"] == "allowed"]
        if allowed:
            assert spec.default in allowed[0], spec.name


def _deployed_settings(overrides: dict[str, Any]) -> dict[str, str]:
    """The app settings a deployment of the example parameters (+ overrides) would write."""
    example = json.loads((INFRA / "main.example.parameters.json").read_text())["parameters"]
    parameters = {name: spec["value"] for name, spec in example.items()} | overrides
    deployment_values = {
        "tenant().tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "alertTopic.outputs.endpoint": "https://keyguard-alerts.westeurope-1.eventgrid.azure.net/api/events",
        "backupVaultRole.name": "5f4a3c2b-1d0e-4f9a-8b7c-6d5e4f3a2b1c",
    }
    evaluate = Evaluator(MAIN, parameters, deployment_values)
    settings = {k: evaluate(v) for k, v in variable(MAIN, "keyguardSettings").items()}
    platform = Evaluator(
        _module("functionapp.bicep"),
        {
            "storageAccountName": "keyguardabc123",
            "identityClientId": "0f0e0d0c-0b0a-4909-8807-060504030201",
        },
        {"appInsights.properties.ConnectionString": "InstrumentationKey=0"},
    )
    for item in variable(_module("functionapp.bicep"), "platformSettingList"):
        settings[item["name"]] = platform(item["value"])
    return settings


def test_deployed_settings_load_in_the_app() -> None:
    from shared.config import load_settings

    settings = load_settings(_deployed_settings({}))
    assert settings.subscriptions == {
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000002",
    }
    assert len(settings.vaults) == 2 and not settings.all_vaults
    assert settings.storage.account_name == "keyguardabc123"
    assert settings.storage.connection_string is None
    assert settings.managed_identity_client_id == "0f0e0d0c-0b0a-4909-8807-060504030201"
    assert settings.backup_role_definition_id == "5f4a3c2b-1d0e-4f9a-8b7c-6d5e4f3a2b1c"
    assert settings.remediation is False and settings.escrow is False
    switched = load_settings(_deployed_settings({"remediation": "true", "escrow": "true"}))
    assert switched.remediation is True and switched.escrow is True


# --- roles --------------------------------------------------------------------------------


def test_backup_role_has_exactly_the_data_actions_backup_needs() -> None:
    role = resources_of_type(MAIN, "Microsoft.Authorization/roleDefinitions")["backupVaultRole"]
    (permissions,) = role["properties"]["permissions"]
    assert sorted(variable(MAIN, permissions["dataActions"])) == sorted(
        KEY_DATA_ACTIONS + SECRET_DATA_ACTIONS
    )
    assert permissions["actions"] == []


def test_keyguard_vault_role_is_narrow() -> None:
    role = resources_of_type(MAIN, "Microsoft.Authorization/roleDefinitions")["keyguardVaultRole"]
    (permissions,) = role["properties"]["permissions"]
    actions = string_leaves(variable(MAIN, permissions["dataActions"]))
    actions = [a for a in actions if a.startswith("Microsoft.")]
    assert set(actions) == {
        "Microsoft.KeyVault/vaults/keys/read",
        "Microsoft.KeyVault/vaults/keys/update/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        "Microsoft.KeyVault/vaults/secrets/update/action",
        "Microsoft.KeyVault/vaults/keys/backup/action",
        "Microsoft.KeyVault/vaults/secrets/backup/action",
    }
    assert permissions["actions"] == []
    # ... and it is the role Keyguard gets on RBAC vaults (only there).
    _, params = module_call(MAIN, "keyVaultAccess")
    assert string_leaves(params["keyguardVaultRoleGuid"]) == ["keyguardVaultRole", "name"]
    access = parse(_module("keyvault-access.bicep"))["resources"]["dataRole"]["config"]
    assert access["condition"] == "rbac"
    assert "keyguardVaultRoleGuid" in string_leaves(access["config"]["properties"])


def _role_assignments() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, name, res)
        for path in bicep_files()
        for name, res in resources_of_type(path, "Microsoft.Authorization/roleAssignments").items()
    ]


def test_role_assignments_are_scoped_and_never_broad() -> None:
    assignments = _role_assignments()
    assert len(assignments) >= 10
    for file, name, res in assignments:
        # Every grant names its scope, except the resource-group Reader on compute groups.
        assert "scope" in res or file == "compute-reader.bicep", f"{file}:{name} has no scope"
    # No broad built-in role is referenced anywhere (role ids live in variables).
    for path in bicep_files():
        tree = parse(path)
        guids = {
            leaf
            for leaf in string_leaves([tree.get("variables", {}), tree.get("resources", {})])
            if GUID.match(leaf)
        }
        assert not guids & FORBIDDEN_ROLES, path.name


def test_rbac_remediation_is_constrained_to_the_backup_role() -> None:
    access = resources_of_type(
        _module("keyvault-access.bicep"), "Microsoft.Authorization/roleAssignments"
    )
    props = access["rbacAdmin"]["properties"]
    assert props["condition"] == "assignBackupRoleOnly"
    assert props["conditionVersion"] == "2.0"
    condition = variable(_module("keyvault-access.bicep"), "assignBackupRoleOnly")
    assert "GuidEquals {${backupRoleGuid}}" in condition
    assert "GuidEquals {${backupPrincipalId}}" in condition
    assert "!(ActionMatches{\\'Microsoft.Authorization/roleAssignments/delete\\'})" in condition
    _, params = module_call(MAIN, "keyVaultAccess")
    assert string_leaves(params["backupRoleGuid"]) == ["backupVaultRole", "name"]
    # ... the same role the app assigns when remediating.
    settings = variable(MAIN, "keyguardSettings")
    assert string_leaves(settings["KEYGUARD_BACKUP_ROLE_DEFINITION_ID"]) == [
        "backupVaultRole",
        "name",
    ]
    conditions = {
        name: parse(_module("keyvault-access.bicep"))["resources"][name]["config"]["condition"]
        for name in ("rbacAdmin", "contributor", "dataRole", "policy")
    }
    assert all(conditions.values()), "remediation and model-specific grants are conditional"


def test_access_policy_entry_is_metadata_and_update_only() -> None:
    path = _module("keyvault-access.bicep")
    policy = body(parse(path)["resources"]["policy"])
    assert policy["name"] == "add", "add to the vault's policies, never replace them"
    keys = string_leaves(variable(path, "keyPermissions"))
    secrets = string_leaves(variable(path, "secretPermissions"))
    # Exactly these, "backup" only with escrow (the leaves include the condition's name).
    assert set(keys) == {"get", "list", "update", "backup", "escrow"}
    assert set(secrets) == {"get", "list", "set", "backup", "escrow"}


def test_backup_principal_parameter_documents_the_lookup() -> None:
    param = parse(MAIN)["parameters"]["backupManagementPrincipalId"]
    (doc,) = [d["argument"] for d in param["decorators"] if d["type"] == "description"]
    assert "az ad sp show --id 262044b1-e2ce-469f-a196-69ab7ada62d3 --query id -o tsv" in doc

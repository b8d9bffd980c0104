"""Drift between infra/ and the app: subscribed event types and ARM operation names
(shared/events/catalog.py), queue/table/container/function names (shared/names.py), and app
settings with their defaults (shared/config.py SETTINGS). The app side is imported, never
copied; the Bicep is read through pycep's parse tree.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import names
from shared.config import SETTINGS
from shared.events.catalog import ARM_EVENT_TYPES, ARM_OPERATIONS, KEYVAULT_EVENT_TYPES
from tests.infra.bicep import (
    INFRA,
    MAIN,
    Evaluator,
    body,
    module_call,
    module_file,
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

# --- drift: events, names, settings --------------------------------------------------------


def test_keyvault_subscription_matches_catalog() -> None:
    target, params = module_call(MAIN, "keyVaultTopics")
    assert target == module_file("keyvault-topic.bicep")
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
    assert target == module_file("subscription-topic.bicep")
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
    tree = parse(module_file(module))
    (sub,) = resources_of_type(
        module_file(module), "Microsoft.EventGrid/systemTopics/eventSubscriptions"
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
    assert module_path(module_file(module), access) == module_file("deadletter-access.bicep")
    assert body(access)["params"]["containerName"] == "deadLetterContainerName"
    (grant,) = resources_of_type(
        module_file("deadletter-access.bicep"), "Microsoft.Authorization/roleAssignments"
    ).values()
    assert grant["scope"] == "container"
    # ... and a dead letter raises an alert, from a rule next to the topic.
    alert = tree["modules"]["deadLetterAlert"]
    assert module_path(module_file(module), alert) == module_file("deadletter-alert.bicep")
    (rule,) = resources_of_type(
        module_file("deadletter-alert.bicep"), "Microsoft.Insights/metricAlerts"
    ).values()
    (criterion,) = rule["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "DeadLetteredCount"
    assert criterion["metricNamespace"] == "Microsoft.EventGrid/systemTopics"


def test_poison_and_failure_alerts_watch_the_app() -> None:
    path = module_file("alert-rules.bicep")
    (poison,) = resources_of_type(path, "Microsoft.Insights/scheduledQueryRules").values()
    (query,) = poison["properties"]["criteria"]["allOf"]
    assert "${poisonFunctionName}" in query["query"]
    assert poison["properties"]["scopes"] == ["appInsightsId"]
    metric_alerts = resources_of_type(path, "Microsoft.Insights/metricAlerts")
    (failures,) = metric_alerts.values()
    (criterion,) = failures["properties"]["criteria"]["allOf"]
    assert criterion["metricName"] == "requests/failed"


def test_storage_names_match_namesmodule_file() -> None:
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


def test_function_and_alert_names_match_namesmodule_file() -> None:
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
                or (value in parse(module_file("functionapp.bicep"))["parameters"])
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
        module_file("functionapp.bicep"),
        {
            "storageAccountName": "keyguardabc123",
            "identityClientId": "0f0e0d0c-0b0a-4909-8807-060504030201",
        },
        {"appInsights.properties.ConnectionString": "InstrumentationKey=0"},
    )
    for item in variable(module_file("functionapp.bicep"), "platformSettingList"):
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

"""The local Azure's server, seen through real SDK clients over real HTTPS.

Managed identity via IDENTITY_ENDPOINT/IDENTITY_HEADER, token audiences, Key Vault's
challenge, Azure-shaped errors, fault injection observed by azure-core's retry policy, call
counts, ARM throttling headers, the clock and scenario validation.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from typing import Any

import pytest

from local.azure.api import AdminError, LocalAzure
from tests.fixtures import local_azure_routes  # noqa: F401  (registers the test.* routes)

pytestmark = pytest.mark.integration

SUB = "00000000-1111-2222-3333-444444444444"
KEYGUARD_OID = "5a1c7e0e-0000-4000-8000-00000000a001"
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def env(azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The app settings, with the managed identity variables set as App Service sets them."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    return azure_env


def credential() -> Any:
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential()


def client(env: dict[str, str], *, retry_total: int = 3, scope: str = ARM_SCOPE) -> Any:
    """An azure-core pipeline like the mgmt clients': retry, bearer token, our CA."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
    from azure.core.pipeline.transport import RequestsTransport

    return PipelineClient(
        base_url=env["KEYGUARD_ARM_ENDPOINT"],
        policies=[
            RetryPolicy(retry_total=retry_total, retry_backoff_factor=0.01),
            BearerTokenCredentialPolicy(credential(), scope),
        ],
        transport=RequestsTransport(connection_verify=env["KEYGUARD_CA_BUNDLE"]),
    )


def send(pipeline: Any, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    from azure.core.rest import HttpRequest

    return pipeline.send_request(
        HttpRequest(method, pipeline.format_url(path), json=body, **kwargs)
    )


def thing(name: str | None = None) -> str:
    name = name or f"t{uuid.uuid4().hex[:8]}"
    return (
        f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Test.Provider/things/{name}"
        "?api-version=2024-01-01"
    )


def claims_of(token: str) -> dict[str, Any]:
    from local.azure.identity import decode_token

    claims = decode_token(token)
    assert claims is not None
    return claims


# -- identity -------------------------------------------------------------------------------


def test_managed_identity_credential_gets_tokens_for_each_audience(env: dict[str, str]) -> None:
    cred = credential()
    arm = cred.get_token(ARM_SCOPE)
    vault = cred.get_token("https://vault.azure.net/.default")
    claims = claims_of(arm.token)
    assert claims["aud"] == "https://management.azure.com"
    assert claims["oid"] == KEYGUARD_OID
    assert claims["tid"] == env["KEYGUARD_TENANT_ID"]
    assert claims["exp"] > time.time() + 3600
    assert abs(arm.expires_on - claims["exp"]) <= 2
    assert claims_of(vault.token)["aud"] == "https://vault.azure.net"


@pytest.mark.parametrize(
    ("header", "status"), [(None, 400), ("wrong-secret", 401)], ids=["missing", "wrong"]
)
def test_identity_endpoint_refuses_missing_or_wrong_header(
    env: dict[str, str], header: str | None, status: int
) -> None:
    url = env["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://vault.azure.net"
    headers = {"X-IDENTITY-HEADER": header} if header else {}
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
    assert info.value.code == status
    assert json.loads(info.value.read())["statusCode"] == status


def test_identity_endpoint_answers_app_service_shape(env: dict[str, str]) -> None:
    url = env["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://vault.azure.net"
    request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
    with urllib.request.urlopen(request, timeout=5) as resp:
        body = json.loads(resp.read())
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["token_type"] == "Bearer" and body["resource"] == "https://vault.azure.net"
    assert int(body["expires_on"]) > time.time()


def test_arm_refuses_wrong_audience_and_missing_token(env: dict[str, str]) -> None:
    wrong = send(
        client(env, retry_total=0, scope="https://vault.azure.net/.default"), "GET", thing()
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "InvalidAuthenticationToken"
    slash = client(env, retry_total=0, scope="https://management.azure.com//.default")
    assert send(slash, "GET", thing()).status_code == 404  # authenticated: the thing is missing
    import requests

    anonymous = requests.get(
        env["KEYGUARD_ARM_ENDPOINT"] + thing(), verify=env["KEYGUARD_CA_BUNDLE"], timeout=5
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"


# -- Key Vault listener ---------------------------------------------------------------------


def test_keyvault_challenge_then_token_flow(env: dict[str, str], local_azure: LocalAzure) -> None:
    import requests
    from azure.core.rest import HttpRequest
    from azure.keyvault.secrets import SecretClient

    vault_uri = local_azure.vault_uri("kvchallenge")
    assert vault_uri.startswith("https://127.0.0.1:") and vault_uri.endswith("/")
    assert local_azure.vault_uri("KVCHALLENGE") == vault_uri  # one listener per vault

    bare = requests.get(
        vault_uri + "test-echo/x?api-version=7.5", verify=env["KEYGUARD_CA_BUNDLE"], timeout=5
    )
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{env["KEYGUARD_TENANT_ID"]}", '
        'resource="https://vault.azure.net"'
    )

    secrets = SecretClient(
        vault_uri,
        credential(),
        verify_challenge_resource=False,
        connection_verify=env["KEYGUARD_CA_BUNDLE"],
    )
    answer = secrets.send_request(HttpRequest("GET", f"{vault_uri}test-echo/x?api-version=7.5"))
    assert answer.status_code == 200
    assert answer.json() == {"vault": "kvchallenge", "name": "x", "oid": KEYGUARD_OID}

    arm_token = credential().get_token(ARM_SCOPE).token
    wrong = requests.get(
        vault_uri + "test-echo/x?api-version=7.5",
        headers={"Authorization": f"Bearer {arm_token}"},
        verify=env["KEYGUARD_CA_BUNDLE"],
        timeout=5,
    )
    assert wrong.status_code == 401
    assert "AKV10022" in wrong.json()["error"]["message"]


# -- errors ----------------------------------------------------------------------------------


def test_arm_error_bodies(env: dict[str, str]) -> None:
    arm = client(env, retry_total=0)
    missing = send(arm, "GET", thing())
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"

    unknown = send(arm, "GET", f"/subscriptions/{SUB}/providers/Nope/x?api-version=1")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NotFound"

    not_allowed = send(arm, "PATCH", thing(), {"properties": {}})
    assert not_allowed.status_code == 405
    assert not_allowed.json()["error"]["code"] == "MethodNotAllowed"

    no_version = send(arm, "GET", thing().split("?")[0])
    assert no_version.status_code == 400
    assert no_version.json()["error"]["code"] == "MissingApiVersionParameter"

    malformed = send(
        arm, "PUT", thing(), content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "BadRequest"

    crash = send(arm, "GET", f"/subscriptions/{SUB}/providers/Test.Provider/crash?api-version=1")
    assert crash.status_code == 500
    assert crash.json()["error"]["code"] == "InternalServerError"
    assert "boom" in crash.json()["error"]["message"]
    assert crash.headers["Content-Type"] == "application/json; charset=utf-8"
    assert crash.headers["x-ms-request-id"]


# -- faults ----------------------------------------------------------------------------------


def test_429_retry_after_is_honoured_by_azure_core(
    env: dict[str, str], local_azure: LocalAzure
) -> None:
    arm = client(env)
    path = thing()
    assert send(arm, "PUT", path, {"properties": {"a": 1}}).status_code == 201
    local_azure.admin.add_fault("test.things.get", "429", count=1, retry_after=1)
    started = time.monotonic()
    response = send(arm, "GET", path)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.95
    assert local_azure.admin.calls()["routes"]["test.things.get"] == 2
    assert local_azure.admin.faults() == []  # the count-limited rule is used up


def test_503_reset_and_latency_faults(env: dict[str, str], local_azure: LocalAzure) -> None:
    arm = client(env)
    path = thing()
    send(arm, "PUT", path, {"properties": {}})
    local_azure.admin.add_fault("test.things.*", "503", count=2, retry_after=0, method="GET")
    assert send(arm, "GET", path).status_code == 200
    assert local_azure.admin.calls()["routes"]["test.things.get"] == 3

    local_azure.admin.add_fault("test.things.get", "reset", count=1)
    assert send(arm, "GET", path).status_code == 200
    assert local_azure.admin.calls()["routes"]["test.things.get"] == 5

    local_azure.admin.add_fault("*", "latency", count=1, latency_ms=250)
    started = time.monotonic()
    assert send(arm, "GET", path).status_code == 200
    assert time.monotonic() - started >= 0.25

    without_retry = client(env, retry_total=0)
    local_azure.admin.add_fault("test.things.get", "500", count=1)
    failed = send(without_retry, "GET", path)
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "InternalServerError"


def test_fraction_faults_are_seeded_and_method_scoped(
    env: dict[str, str], local_azure: LocalAzure
) -> None:
    arm = client(env, retry_total=0)
    path = thing()
    send(arm, "PUT", path, {"properties": {}})

    def pattern() -> list[int]:
        local_azure.admin.clear_faults()
        local_azure.admin.add_fault("test.things.get", "500", fraction=0.5, seed=7)
        return [send(arm, "GET", path).status_code for _ in range(40)]

    first, second = pattern(), pattern()
    assert first == second
    assert 8 <= first.count(500) <= 32 and set(first) == {200, 500}
    assert send(arm, "PUT", path, {"properties": {}}).status_code == 200  # other method: no fault


def test_invalid_fault_is_refused(azure_env: dict[str, str], local_azure: LocalAzure) -> None:
    with pytest.raises(AdminError) as info:
        local_azure.admin.add_fault("*", "explode")
    assert info.value.status == 400 and info.value.code == "InvalidFault"


# -- calls, throttling, clock, scenario ------------------------------------------------------


def test_calls_are_counted_by_route_and_surface(
    env: dict[str, str], local_azure: LocalAzure
) -> None:
    arm = client(env)
    path = thing()
    send(arm, "PUT", path, {"properties": {}})
    send(arm, "GET", path)
    send(arm, "GET", path)
    calls = local_azure.admin.calls()
    assert calls["routes"]["test.things.put"] == 1
    assert calls["routes"]["test.things.get"] == 2
    assert calls["surfaces"]["arm"] == 3
    assert "admin" not in calls["surfaces"]
    local_azure.admin.reset_calls()
    assert local_azure.admin.calls() == {"routes": {}, "surfaces": {}}


def test_arm_throttling_headers_and_429(env: dict[str, str], local_azure: LocalAzure) -> None:
    arm = client(env, retry_total=0)
    path = thing()
    put = send(arm, "PUT", path, {"properties": {}})
    assert put.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
    first = send(arm, "GET", path)
    second = send(arm, "GET", path)
    assert first.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert second.headers["x-ms-ratelimit-remaining-subscription-reads"] == "248"

    local_azure.admin.set_throttle(reads=(2, 0.5))
    statuses = [send(arm, "GET", path) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    throttled = statuses[-1]
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    # the call counts say which route and bucket answered 429 (a benchmark's 429s explained)
    throttled_by = local_azure.admin.calls()["throttled"]
    assert list(throttled_by.values()) == [1] and next(iter(throttled_by)).endswith(" (reads)")


def test_clock_advances_only_forward(azure_env: dict[str, str], local_azure: LocalAzure) -> None:
    before = datetime.fromisoformat(local_azure.admin.now().replace("Z", "+00:00"))
    after = datetime.fromisoformat(local_azure.admin.advance_clock(86400).replace("Z", "+00:00"))
    assert 86400 <= (after - before).total_seconds() < 86460
    with pytest.raises(AdminError) as info:
        local_azure.admin.advance_clock(-1)
    assert info.value.status == 400
    local_azure.admin.load_scenario(local_azure_routes_scenario())  # a reload resets the clock
    reloaded = datetime.fromisoformat(local_azure.admin.now().replace("Z", "+00:00"))
    assert (reloaded - before).total_seconds() < 60


def local_azure_routes_scenario() -> dict[str, Any]:
    return {
        "tenant_id": "11111111-2222-3333-4444-555555555555",
        "subscriptions": [SUB],
        "principals": {"keyguard": KEYGUARD_OID},
    }


def test_scenario_json_loads_and_bad_ones_are_refused(
    azure_env: dict[str, str], local_azure: LocalAzure
) -> None:
    local_azure.admin.load_scenario(json.dumps(local_azure_routes_scenario()))
    state = local_azure.admin.state()
    assert state["tenant_id"] == "11111111-2222-3333-4444-555555555555"
    assert state["principals"] == {"keyguard": KEYGUARD_OID}
    assert local_azure.env()["KEYGUARD_TENANT_ID"] == "11111111-2222-3333-4444-555555555555"

    for bad, needle in [
        ({**local_azure_routes_scenario(), "virtual_machine": []}, "virtual_machine"),
        ({"subscriptions": [SUB], "principals": {}}, "principals.keyguard"),
        ({**local_azure_routes_scenario(), "subscriptions": ["not-a-guid"]}, "GUID"),
    ]:
        with pytest.raises(AdminError) as info:
            local_azure.admin.load_scenario(bad)
        assert info.value.status == 400 and info.value.code == "InvalidScenario"
        assert needle in info.value.body["error"]["message"]
    with pytest.raises(AdminError):
        local_azure.admin.load_scenario("- just\n- a list\n")


def test_env_is_a_valid_keyguard_configuration(env: dict[str, str]) -> None:
    from shared.clients import AzureClients
    from shared.config import load_settings

    settings = load_settings({**env, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert settings.cloud.name == "Custom"
    assert settings.cloud.arm_endpoint == env["KEYGUARD_ARM_ENDPOINT"]
    assert settings.cloud.ca_bundle == env["KEYGUARD_CA_BUNDLE"]
    assert settings.cloud.keyvault_verify_challenge is False
    assert settings.cloud.lro_poll_seconds == 0.05
    assert env["KEYGUARD_SUBSCRIPTIONS"] == SUB
    assert env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"] == "5a1c7e0e-0000-4000-8000-00000000b002"
    token = AzureClients(settings).credential.get_token(settings.cloud.arm_scope)
    assert claims_of(token.token)["aud"] == "https://management.azure.com"


def test_user_assigned_identity_client_id_is_echoed(env: dict[str, str]) -> None:
    url = (
        env["IDENTITY_ENDPOINT"]
        + "?api-version=2019-08-01&resource=https://vault.azure.net&client_id=abc-123"
    )
    request = urllib.request.Request(url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert json.loads(resp.read())["client_id"] == "abc-123"


def test_concurrent_keep_alive_clients(env: dict[str, str], local_azure: LocalAzure) -> None:
    import requests

    path = thing()
    send(client(env), "PUT", path, {"properties": {}})
    token = credential().get_token(ARM_SCOPE).token
    local_azure.admin.reset_calls()
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(25):
                response = session.get(
                    env["KEYGUARD_ARM_ENDPOINT"] + path,
                    headers={"Authorization": f"Bearer {token}"},
                    verify=env["KEYGUARD_CA_BUNDLE"],
                    timeout=10,
                )
                with lock:
                    statuses.append(response.status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert statuses == [200] * 200
    assert local_azure.admin.calls()["routes"] == {"test.things.get": 200}
    assert time.monotonic() - started < 10  # no 40 ms Nagle stalls, no serialisation hangs

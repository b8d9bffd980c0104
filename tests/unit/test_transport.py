"""shared.transport: when SDK clients re-read the environment per request."""

from __future__ import annotations

import pytest

from shared.transport import PROXY_VARIABLES, environment_sets_proxy, transport_options


def test_plain_environment_skips_per_request_scans() -> None:
    env = {"PATH": "/usr/bin", "AzureWebJobsStorage": "x", "FUNCTIONS_WORKER_RUNTIME": "python"}
    assert environment_sets_proxy(env) is False
    assert transport_options(environ=env) == {"use_env_settings": False}


@pytest.mark.parametrize("name", PROXY_VARIABLES)
@pytest.mark.parametrize("spell", [str.upper, str.lower])
def test_any_proxy_variable_keeps_the_environment(name: str, spell: object) -> None:
    env = {spell(name): "http://proxy.example:3128", "REQUESTS_CA_BUNDLE": "/ca.pem"}  # type: ignore[operator]
    assert environment_sets_proxy(env) is True
    assert transport_options(environ=env) == {"use_env_settings": True}, "requests reads it all"


def test_a_ca_bundle_variable_is_read_once_with_requests_precedence() -> None:
    both = {"REQUESTS_CA_BUNDLE": "/requests.pem", "CURL_CA_BUNDLE": "/curl.pem"}
    assert transport_options(environ=both) == {
        "use_env_settings": False,
        "connection_verify": "/requests.pem",
    }
    curl = {"CURL_CA_BUNDLE": "/curl.pem", "REQUESTS_CA_BUNDLE": ""}
    assert transport_options(environ=curl)["connection_verify"] == "/curl.pem"


def test_keyguards_own_ca_bundle_wins() -> None:
    env = {"REQUESTS_CA_BUNDLE": "/requests.pem"}
    assert transport_options("/keyguard.pem", env)["connection_verify"] == "/keyguard.pem"
    proxied = {"HTTPS_PROXY": "http://p:1"}
    assert transport_options("/keyguard.pem", proxied) == {
        "use_env_settings": True,
        "connection_verify": "/keyguard.pem",
    }


def test_empty_values_count_as_unset() -> None:
    assert environment_sets_proxy({"HTTPS_PROXY": "", "no_proxy": ""}) is False

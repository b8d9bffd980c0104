"""shared.transport: when SDK clients re-read the environment per request."""

from __future__ import annotations

import pytest

from shared.transport import ENV_VARIABLES, environment_configures_http, transport_options


def test_plain_environment_skips_per_request_scans() -> None:
    env = {"PATH": "/usr/bin", "AzureWebJobsStorage": "x", "FUNCTIONS_WORKER_RUNTIME": "python"}
    assert environment_configures_http(env) is False
    assert transport_options(env) == {"use_env_settings": False}


@pytest.mark.parametrize("name", ENV_VARIABLES)
@pytest.mark.parametrize("spell", [str.upper, str.lower])
def test_any_proxy_or_ca_variable_keeps_the_environment(name: str, spell: object) -> None:
    env = {spell(name): "http://proxy.example:3128"}  # type: ignore[operator]
    assert environment_configures_http(env) is True
    assert transport_options(env) == {"use_env_settings": True}


def test_empty_values_count_as_unset() -> None:
    assert environment_configures_http({"HTTPS_PROXY": "", "no_proxy": ""}) is False

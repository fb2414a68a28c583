"""schemathesis against the app's own OpenAPI schema, on a real server: no request it makes gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.settings import Settings

from .conftest import Server, running_server

# create_app builds no model: the schema is the app's own, served by the real server below
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
# valid requests and requests that break the schema on purpose: neither may get a 5xx
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with running_server(tiny_bundle, log, max_inputs_per_request=16, max_attention_values=200_000) as running:
        yield running


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, server: Server) -> None:
    response = case.call(base_url=server.url, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text}"

"""deploy/kubernetes, offline: each overlay renders (kubectl kustomize), validates strictly against the
Kubernetes 1.33 schema (kubernetes-validate) and passes checkov (skips justified in the manifest), and holds
the invariants that matter: probes on the service's real routes, a grace period past the request timeout, GPU
limits in the gpu overlay, and an autoscaler metric built from one the service exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from service.app import create_app
from service.metrics import Metrics
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".venv-k8s" / "bin"
OVERLAYS = ["gpu", "cpu"]


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{name} is missing: make k8s-tools installs it into .venv-k8s (make test does)", pytrace=False)
    return str(path)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, system_tool, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    kubectl = system_tool("kubectl", "kubernetes-client")
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / request.param)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    file = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    file.write_text(out.stdout)
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out.stdout) if d}
    return request.param, file, docs


def test_validates_strictly_against_kubernetes_1_33(rendered: tuple) -> None:
    _, file, _ = rendered
    result = subprocess.run([tool("kubernetes-validate"), "--strict", "-k", "1.33.0", "--quiet", str(file)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes(rendered: tuple) -> None:
    _, file, _ = rendered
    result = subprocess.run([tool("checkov"), "-f", str(file), "--framework", "kubernetes", "--quiet", "--compact",
                             "--skip-download", "--output", "cli"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Failed checks: 0" in result.stdout


def _container(docs: dict) -> dict:
    (container,) = docs[("Deployment", "attnserve")]["spec"]["template"]["spec"]["containers"]
    return container


def test_probes_point_at_the_services_own_routes(rendered: tuple) -> None:
    _, _, docs = rendered
    routes = set(create_app(Settings()).openapi()["paths"])
    container = _container(docs)
    probes = {k: container[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    assert set(probes.values()) <= routes
    assert container["ports"][0]["containerPort"] == 8000


def test_grace_period_outlasts_the_request_timeout_and_the_pre_stop_pause(rendered: tuple) -> None:
    _, _, docs = rendered
    pod = docs[("Deployment", "attnserve")]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in _container(docs)["env"]}
    timeout = float(env["ATTNSERVE_REQUEST_TIMEOUT_S"])
    pause = _container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > timeout + pause


def test_gpu_limits_only_in_the_gpu_overlay(rendered: tuple) -> None:
    overlay, _, docs = rendered
    resources = _container(docs)["resources"]
    env = {e["name"]: e.get("value") for e in _container(docs)["env"]}
    if overlay == "gpu":
        assert resources["limits"]["nvidia.com/gpu"] == 1 and env["ATTNSERVE_PROVIDER"] == "cuda"
    else:
        assert "nvidia.com/gpu" not in resources["limits"] and env["ATTNSERVE_PROVIDER"] == "cpu"


def test_the_autoscalers_metric_comes_from_one_the_service_exports(rendered: tuple) -> None:
    _, _, docs = rendered
    hpa = docs[("HorizontalPodAutoscaler", "attnserve")]
    pods_metric = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    rules = yaml.safe_load(docs[("ConfigMap", "attnserve-prometheus-adapter-rules")]["data"]["config.yaml"])
    (rule,) = [r for r in rules["rules"] if r["name"]["as"] == pods_metric]
    metrics = Metrics()
    metrics.observer("minilm")  # as at start-up: the per-model series exist once a model's batcher has its observer
    exported = generate_latest(metrics.registry).decode()
    for series in re.findall(r"attnserve_[a-z_]+", rule["seriesQuery"] + rule["metricsQuery"]):
        assert re.search(rf"^{series}[ {{]", exported, re.M), f"{series} is not a metric the service exports"
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])


def test_api_keys_come_from_a_secret(rendered: tuple) -> None:
    _, _, docs = rendered
    keys = next(e for e in _container(docs)["env"] if e["name"] == "ATTNSERVE_API_KEYS")
    assert keys["valueFrom"]["secretKeyRef"]["name"] == "attnserve-api-keys"

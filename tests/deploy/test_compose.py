"""docker-compose.yml validates with Debian's docker-compose on every profile, and says what operators need."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILES = [[], ["cpu"], ["scale"], ["loadtest"], ["monitoring"], ["scale", "loadtest", "monitoring"]]


@pytest.mark.parametrize("profiles", PROFILES, ids=["default", "cpu", "scale", "loadtest", "monitoring", "all"])
def test_compose_config_is_valid(profiles: list[str], system_tool) -> None:
    compose = system_tool("docker-compose", "docker-compose")
    args = [compose, "-f", str(ROOT / "docker-compose.yml")]
    for p in profiles:
        args += ["--profile", p]
    result = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=60, check=False,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_encoder_reserves_a_gpu_and_mounts_the_bundle_read_only(compose: dict) -> None:
    encoder = compose["services"]["encoder"]
    (device,) = encoder["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["device_ids"]
    assert "models:/models:ro" in encoder["volumes"]
    assert "/readyz" in " ".join(encoder["healthcheck"]["test"])
    assert encoder["restart"] == "unless-stopped"
    assert encoder["depends_on"]["export"]["condition"] == "service_completed_successfully"


def test_grace_period_outlasts_the_request_timeout(compose: dict) -> None:
    encoder = compose["services"]["encoder"]
    grace = int(encoder["stop_grace_period"].rstrip("s"))
    timeout = int(encoder["environment"]["ATTNSERVE_REQUEST_TIMEOUT_S"].split(":-")[1].rstrip("}"))
    assert grace > timeout


def test_scale_profile_puts_one_replica_per_gpu_behind_nginx(compose: dict) -> None:
    services = compose["services"]
    gpus = {name: s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"][0]
            for name, s in services.items() if name.startswith("encoder") and "deploy" in s}
    assert len(set(gpus.values())) == len(gpus) >= 2
    upstreams = services["nginx"]["environment"]["ATTNSERVE_UPSTREAM_SERVERS"]
    for name in gpus:
        assert f"server {name}:8000" in upstreams
    assert services["nginx"]["profiles"] == ["scale"]


def test_export_is_a_one_shot_job_writing_the_shared_volume(compose: dict) -> None:
    export = compose["services"]["export"]
    assert export["restart"] == "no" and export["build"]["target"] == "export"
    assert "models:/models" in export["volumes"]


def test_dockerfile_serving_image_has_no_torch_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    serve = text.split("AS serve", 1)[1].split("\nFROM ", 1)[0]
    installs = [line for line in serve.splitlines() if "pip install" in line]
    # no torch, no extras but OpenVINO, and that only in the CPU image
    cpu_only = '".$( [ "$RUNTIME" = cpu ] && echo \'[openvino]\' )"'
    assert installs and not any("torch" in line or "[" in line.replace(cpu_only, "") for line in installs)
    assert any(cpu_only in line for line in installs)
    assert '! python -c "import torch"' in serve  # the build fails if torch sneaks in
    assert "USER attnserve" in serve and "HEALTHCHECK" in serve and "/readyz" in serve
    assert "nvidia/cuda:13" in text and "cudnn" in text


@pytest.mark.parametrize("stage", ["serve", "export"])
def test_every_installed_package_is_copied_into_the_python_images(stage: str) -> None:
    """pip install . in the image needs every package pyproject lists (a new top-level package once
    was not copied: the image would not have built)."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    tops = {p.split(".")[0] for p in packages}
    text = (ROOT / "Dockerfile").read_text()
    body = text.split(f"AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
    copied = {line.split()[1] for line in body.splitlines() if line.startswith("COPY ") and "--from" not in line}
    assert tops <= copied, f"{stage}: not copied: {sorted(tops - copied)}"

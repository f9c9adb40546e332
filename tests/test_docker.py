"""docker/: no engine runs here, so the files are checked statically."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from jobs.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_has_the_stack():
    services = _compose()["services"]
    assert {"postgres", "spark-master", "spark-worker", "mlflow", "airflow-init",
            "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"} <= set(services)


def test_images_are_pinned():
    for name, svc in _compose()["services"].items():
        image = svc.get("image", "")
        assert image, f"{name} has no image"
        if image.startswith("replenish:"):
            assert "build" in svc, f"{name} uses the project image without building it"
            continue
        assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", image), f"{name}: {image} not pinned"
    first = (DOCKER / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", first, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert "pip install -c constraints.txt" in first


def test_no_password_in_the_files():
    for f in DOCKER.rglob("*"):
        if f.is_file():
            text = f.read_text()
            assert not re.search(r"PASSWORD\s*[:=]\s*['\"]?[A-Za-z0-9]{6,}", text), f
            for secret in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):
                assert secret.startswith("${"), f"{f}: a literal password in a URL"


def test_every_variable_the_jobs_read_is_a_config_variable():
    env = {}
    for svc in _compose()["services"].values():
        env.update(svc.get("environment") or {})
    ours = {k for k in env if k.startswith(("REPLENISH_", "SPARK_MASTER", "MLFLOW_"))}
    ours -= {"REPLENISH_DB_PASSWORD", "REPLENISH_VERSION"}
    assert ours <= set(ENV_VARS), ours - set(ENV_VARS)


def test_the_image_copies_every_package_setup_cfg_installs():
    cfg = (ROOT / "setup.cfg").read_text()
    block = re.search(r"\[options\.packages\.find\]\s*\ninclude\s*=\s*\n((?:[ \t]+\S+\n)+)",
                      cfg).group(1)
    packages = {p.strip().removesuffix(".*") for p in block.split()}
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for pkg in packages:
        assert f"COPY {pkg} ./{pkg}" in dockerfile, pkg

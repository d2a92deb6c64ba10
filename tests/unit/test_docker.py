"""docker/ is checked statically: no Docker engine runs on the development machines.

The compose file and the Dockerfile are parsed and cross-checked: every
service the configuration and the connections name exists, every variable
compose reads is documented in .env.example (with no value for secrets), the
image installs this package on the Airflow version pyproject pins, the GPU
worker reserves a GPU and listens on the queue the GPU configuration uses.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from rag_ingest.config import load_settings

PROJECT = Path(__file__).resolve().parents[2]
DOCKER_DIR = PROJECT / "docker"
# Names whose values are secrets: they must come from .env, never from a file in git.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCKER_DIR / "compose.yaml").read_text())
    return document


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (DOCKER_DIR / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_every_service_the_deployment_needs_is_there_with_a_health_check(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    needed = {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-gpu",
        "spark-master",
        "spark-worker",
        "mongodb",
    }
    assert needed <= set(services)
    for name in needed - {"airflow-init"}:  # a one-shot job has nothing to check
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no health check"
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["mongodb"]["image"].startswith("mongodb/mongodb-atlas-local:")


def test_airflow_runs_celery_on_postgres_and_redis_services(compose: dict[str, Any]) -> None:
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for key, service in (
        ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgres"),
        ("AIRFLOW__CELERY__BROKER_URL", "redis"),
        ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "airflow-apiserver"),
    ):
        assert urlparse(re.sub(r"\$\{[^}]*\}", "x", env[key])).hostname == service
        assert service in compose["services"]
    for name in ("airflow-apiserver", "airflow-worker", "airflow-scheduler"):
        assert compose["services"][name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }


def test_the_configuration_names_only_what_compose_provides(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["airflow-worker"]["environment"]
    mounts = [m.split(":")[1] for m in services["airflow-worker"]["volumes"]]
    for name in ("rag_ingest.yaml", "rag_ingest.gpu.yaml"):
        settings = load_settings(DOCKER_DIR / name)
        # The store and Spark connections it names are defined, and point at services.
        mongo = env[f"AIRFLOW_CONN_{settings.store.conn_id.upper()}"]
        spark = env[f"AIRFLOW_CONN_{settings.spark.conn_id.upper()}"]
        assert urlparse(re.sub(r"\$\{[^}]*\}", "x", mongo)).hostname == "mongodb"
        assert urlparse(spark).hostname == "spark-master" and urlparse(spark).port == 7077
        assert "7077" in services["spark-master"]["command"][-1]
        # Staging, reports and sources lie on volumes every worker shares.
        for path in (settings.staging_dir, settings.reports_dir, settings.sources[0].location):
            assert any(path.startswith(m) for m in mounts), f"{name}: {path} is not shared"
        assert settings.spark.mode == "submit"
        assert settings.embedding.pool == "rag_ingest_embedding"
        assert "airflow pools set rag_ingest_embedding" in services["airflow-init"]["command"][-1]
        assert settings.quality.suites_dir is None  # the suites the package ships
        assert (settings.suites_dir / "documents.json").is_file()
    # The Spark worker sees the same staging as the Airflow workers.
    assert services["spark-worker"]["volumes"] == services["airflow-worker"]["volumes"]


def test_the_gpu_worker_reserves_a_gpu_and_takes_the_gpu_queue(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    queue = load_settings(DOCKER_DIR / "rag_ingest.gpu.yaml").embedding.queue
    command = gpu["command"]
    assert command[command.index("--queues") + 1] == queue == "gpu"
    assert "cu1" in gpu["build"]["args"]["TORCH_INDEX_URL"]  # a CUDA build of torch
    for name in ("airflow-worker", "airflow-worker-embedding"):
        cpu = compose["services"][name]["command"]
        assert queue not in cpu[cpu.index("--queues") + 1].split(",")
    # The CPU configuration sends embedding to its own workers, which listen on its queue.
    cpu_queue = load_settings(DOCKER_DIR / "rag_ingest.yaml").embedding.queue
    embedding = compose["services"]["airflow-worker-embedding"]["command"]
    assert embedding[embedding.index("--queues") + 1] == cpu_queue == "embedding"


def test_every_variable_is_documented_and_no_secret_is_committed(compose: dict[str, Any]) -> None:
    # `$${X}` is an escape: the container's own shell reads it, not compose.
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", (DOCKER_DIR / "compose.yaml").read_text()))
    documented = env_example()
    assert used <= set(documented), f"not in .env.example: {sorted(used - set(documented))}"
    for name, value in documented.items():
        if SECRET_NAME.search(name) and name != "MONGODB_USERNAME":
            assert value == "", f".env.example must not carry a value for {name}"
    # Secrets in compose come from the environment and must be set (`:?`), not defaulted.
    for name in used:
        if SECRET_NAME.search(name):
            for match in re.finditer(
                r"\$\{" + name + r"([^}]*)\}", (DOCKER_DIR / "compose.yaml").read_text()
            ):
                assert match.group(1).startswith(":?"), f"{name} has a default in compose.yaml"
    # Nothing under docker/ holds a literal credential.
    for path in DOCKER_DIR.iterdir():
        text = path.read_text()
        keys = r"^\s*[A-Z_]*(PASSWORD|SECRET)[A-Z_]*\s*[:=]\s*(\S+)"  # KEY: value, KEY=value
        for match in re.finditer(keys, text, re.MULTILINE):
            value = match.group(2)
            assert value.startswith(("${", '"$$', "$$")) or path.name == ".env.example", (
                f"{path.name}: {match.group(0)}"
            )
    assert (PROJECT / ".gitignore").read_text().count("docker/.env") >= 1


def test_the_image_installs_this_package_on_the_pinned_airflow() -> None:
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    (airflow_pin,) = [
        d for d in pyproject["project"]["dependencies"] if d.startswith("apache-airflow==")
    ]
    version = airflow_pin.split("==")[1]
    assert f"ARG AIRFLOW_VERSION={version}" in dockerfile
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}", dockerfile, re.MULTILINE)
    assert '"/opt/rag-ingest[onnx,deploy]"' in dockerfile  # this project, with the deploy extra
    for folder in ("plugins", "dags", "spark_jobs"):
        assert f"COPY --chown=airflow:root {folder} ./{folder}" in dockerfile
        assert (PROJECT / folder).is_dir()
    assert "openjdk-17-jre-headless" in dockerfile  # Spark 4 needs Java 17
    torch_pin = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch==")][0]
    assert f"ARG TORCH_VERSION={torch_pin.split('==')[1]}" in dockerfile


def test_the_deployment_fixes_found_when_it_was_run(compose: dict[str, Any]) -> None:
    """What bringing the deployment up for real (tests/e2e/test_deployment.py) found."""
    dockerfile = (DOCKER_DIR / "Dockerfile").read_text()
    # The data folder exists in the image, owned by the image's user, so a fresh
    # named volume mounted there is writable by airflow-init.
    assert "mkdir -p /opt/rag-ingest/data" in dockerfile
    assert "chown -R airflow:root /opt/rag-ingest/data" in dockerfile
    services = compose["services"]
    environment = services["airflow-scheduler"]["environment"]
    # A dead worker's task is retried within a minute, not after Airflow's 300 s.
    assert int(environment["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"]) <= 30
    assert environment["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    # Task logs on one volume every worker writes and the API server reads.
    for name in ("airflow-apiserver", "airflow-worker", "airflow-worker-embedding"):
        assert "logs:/opt/airflow/logs" in services[name]["volumes"], name
    # The Spark worker cleans finished applications and works on the data volume.
    worker = services["spark-worker"]
    assert "spark.worker.cleanup.enabled=true" in worker["environment"]["SPARK_WORKER_OPTS"]
    assert "--work-dir /opt/rag-ingest/data/spark-work" in worker["command"][-1]

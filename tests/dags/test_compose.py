"""The container deployment: ``docker/compose.yaml`` is valid Compose and wires every service.

``docker compose config`` needs no engine, only the CLI and its Compose plugin (or a standalone
``docker-compose`` v2); without them the compose test is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from secrets_init import init as init_secrets

DOCKER_DIR = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER_DIR / "compose.yaml"
AIRFLOW = {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
INIT = {"airflow-init", "kafka-secrets", "kafka-init"}  # one-off steps: no health check
SERVICES = {"kafka", "schema-registry", "postgres", "portal"} | INIT | AIRFLOW


def compose_command() -> list[str]:
    """``docker compose`` if the plugin answers, else a standalone ``docker-compose`` v2; or skip."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    if subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        version = subprocess.run(
            [standalone, "version", "--short"], capture_output=True, text=True, check=False
        )
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            return [standalone]
    pytest.skip("the docker CLI has no Compose v2 plugin (`docker compose`) and no docker-compose v2")


START_DATE = {"REGSYNC_AIRFLOW__START_DATE": "2026-01-01"}  # required: compose assumes no start date


def _clean_env() -> dict[str, str]:
    # Compose interpolates ${…} from the environment: leave ours out so the defaults are checked.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("REGSYNC_", "AIRFLOW", "KAFKA_", "POSTGRES_", "APICURIO_", "COMPOSE_", "REGISTRY_")
        )
    }


@pytest.fixture(scope="module")
def secrets_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A docker/.env as scripts/secrets_init.py makes it (compose refuses to start without one)."""
    path = tmp_path_factory.mktemp("secrets") / ".env"
    init_secrets(path, DOCKER_DIR / ".env.example")
    return path


@pytest.fixture(scope="module")
def config(secrets_env: Path) -> dict:
    env = {**_clean_env(), **START_DATE}
    done = subprocess.run(
        [
            *compose_command(),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(secrets_env),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_names_every_service(config):
    assert set(config["services"]) == SERVICES


def test_compose_images(config):
    services = config["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.1.")
    assert services["schema-registry"]["image"].startswith("apicurio/apicurio-registry:3.0.")
    assert services["postgres"]["image"] == "postgres:15"
    for name in AIRFLOW | {"airflow-init"}:
        build = services[name]["build"]
        assert Path(build["context"]).resolve() == DOCKER_DIR.parent
        assert build["dockerfile"] == "docker/Dockerfile"


def test_compose_wires_airflow_and_regsync_by_environment(config):
    services = config["services"]
    for name in AIRFLOW | {"airflow-init"}:
        env = services[name]["environment"]
        assert env["REGSYNC_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert env["REGSYNC_REGISTRY_URL"] == "http://schema-registry:8080/apis/ccompat/v7"
        assert env["REGSYNC_DATABASE_URL"].endswith(
            "@postgres:5432/regsync?sslmode=verify-full&sslrootcert=/etc/regsync/ca/ca.pem"
        )
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(
            "@postgres:5432/airflow?sslmode=verify-full&sslrootcert=/etc/regsync/ca/ca.pem"
        )
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
        mounts = {(v["source"], v["target"]) for v in services[name]["volumes"] if v["type"] == "bind"}
        assert (str(DOCKER_DIR.parent / "dags"), "/opt/airflow/dags") in mounts
    registry = services["schema-registry"]["environment"]
    assert registry["APICURIO_STORAGE_KIND"] == "sql"
    assert (
        registry["APICURIO_DATASOURCE_URL"]
        == "jdbc:postgresql://postgres:5432/apicurio?sslmode=verify-full&sslrootcert=/etc/regsync/ca/ca.pem"
    )
    commands = {name: " ".join(services[name]["command"]) for name in AIRFLOW}
    assert commands == {
        "airflow-api-server": "airflow api-server",
        "airflow-scheduler": "airflow scheduler",
        "airflow-dag-processor": "airflow dag-processor",
        "airflow-triggerer": "airflow triggerer",
    }


def test_long_running_services_have_healthchecks_and_volumes(config):
    services = config["services"]
    for name in SERVICES - INIT:
        assert services[name]["healthcheck"]["test"], name
    for name, target in [
        ("kafka", "/var/lib/kafka/data"),
        ("postgres", "/var/lib/postgresql/data"),
        ("airflow-scheduler", "/opt/airflow/logs"),
    ]:
        assert any(v["type"] == "volume" and v["target"] == target for v in services[name]["volumes"]), name
    assert services["airflow-api-server"]["depends_on"]["airflow-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_init_migrates_every_database_and_registers_the_contracts(config):
    script = " ".join(config["services"]["airflow-init"]["command"])
    for step in ("airflow db migrate", "regsync db upgrade", "regsync schemas register"):
        assert step in script
    assert "REGSYNC_DATABASE_URL" in config["services"]["airflow-init"]["environment"]


def test_dockerfile_installs_the_lock_as_a_non_root_user():
    text = (DOCKER_DIR / "Dockerfile").read_text()
    assert "python:3.11-slim" in text
    assert "uv sync --frozen --no-dev --no-install-project" in text
    assert "uv sync --frozen --no-dev --no-editable" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_cluster_and_monitoring_profiles_add_two_brokers_and_prometheus_with_the_rules(secrets_env):
    env = {**_clean_env(), **START_DATE}
    done = subprocess.run(
        [
            *compose_command(),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(secrets_env),
            "--env-file",
            str(DOCKER_DIR / "cluster.env"),
            "--profile",
            "cluster",
            "--profile",
            "monitoring",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == SERVICES | {"kafka-2", "kafka-3", "node-exporter", "prometheus"}
    voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    # The voters reach the init that renders every node's config (replication 3, min ISR 2 for
    # three voters: tests/unit/test_compose_kafka.py renders it).
    assert f"--voters={voters}" in services["kafka-secrets"]["command"]
    for node, name in enumerate(("kafka", "kafka-2", "kafka-3"), start=1):
        kafka = services[name]["environment"]
        assert kafka["KAFKA_NODE_ID"] == str(node)
        assert services[name]["depends_on"]["kafka-secrets"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW:
        env_ = services[name]["environment"]
        assert env_["REGSYNC_KAFKA_BOOTSTRAP"] == "kafka:9092,kafka-2:9092,kafka-3:9092"
        assert env_["REGSYNC_METRICS_TEXTFILE_DIR"] == "/opt/regsync/metrics"
    mounts = {v["target"]: v["source"] for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    assert mounts["/etc/prometheus/rules.yml"] == str(DOCKER_DIR / "prometheus" / "rules.yml")


def test_the_default_deployment_is_still_one_broker(config):
    assert "--voters=1@kafka:9093" in config["services"]["kafka-secrets"]["command"]
    assert config["services"]["airflow-scheduler"]["environment"]["REGSYNC_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_the_portal_is_a_service_with_a_health_check(config):
    portal = config["services"]["portal"]
    assert " ".join(portal["command"]).startswith("regsync serve --host 0.0.0.0")
    assert "/healthz" in " ".join(portal["healthcheck"]["test"])
    assert any(p.get("host_ip") == "127.0.0.1" for p in portal["ports"])  # not on every interface
    assert portal["environment"]["REGSYNC_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_compose_refuses_to_start_without_its_secrets():
    done = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--env-file", os.devnull, "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**_clean_env(), **START_DATE},
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "required variable" in done.stderr
    assert "secrets_init.py" in done.stderr  # the refusal says how to fix it


def test_each_service_holds_only_its_own_database_credentials(config, secrets_env):
    values = dict(line.split("=", 1) for line in secrets_env.read_text().splitlines() if "=" in line)
    owner, pipeline, portal = (
        values["REGSYNC_DB_PASSWORD"],
        values["REGSYNC_DB_PIPELINE_PASSWORD"],
        values["REGSYNC_DB_PORTAL_PASSWORD"],
    )
    registry_admin = values["REGISTRY_ADMIN_PASSWORD"]
    services = config["services"]

    def holders(secret: str) -> set[str]:
        return {name for name, svc in services.items() if secret in json.dumps(svc.get("environment", {}))}

    assert holders(owner) == {"postgres", "airflow-init"}
    assert holders(portal) == {"postgres", "portal"}
    assert holders(pipeline) == {"postgres"} | AIRFLOW | {"airflow-init"}
    assert holders(registry_admin) == {"schema-registry", "airflow-init"}
    assert services["portal"]["environment"]["REGSYNC_PORTAL_DATABASE_URL"].startswith(
        "postgresql+psycopg://regsync_portal:"
    )
    assert services["airflow-init"]["environment"]["REGSYNC_DB__ROLES"] == "true"


def test_the_registry_authenticates_writes_and_reads_anonymously(config):
    registry = config["services"]["schema-registry"]["environment"]
    assert registry["QUARKUS_HTTP_AUTH_BASIC"] == "true"
    assert registry["APICURIO_AUTH_ROLE_BASED_AUTHORIZATION"] == "true"
    assert registry["APICURIO_AUTH_ANONYMOUS_READ_ACCESS_ENABLED"] == "true"
    assert "-Dquarkus.security.users.embedded.roles.regsync=sr-admin" in registry["JAVA_OPTS_APPEND"]


def test_compose_refuses_to_start_without_a_start_date(secrets_env):
    """Issue 16: unpausing the monthly DAG catches up from the start date, so none is assumed."""
    done = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--env-file", str(secrets_env), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "REGSYNC_AIRFLOW__START_DATE" in done.stderr and "set it in docker/.env" in done.stderr


def test_streaming_profile_runs_the_gate_as_replicas_that_claim_their_instance(secrets_env):
    """The gate as a service: N identical replicas, each claiming a slot (there is no replica index)."""
    env = {**_clean_env(), **START_DATE}

    def services(**extra: str) -> dict:
        done = subprocess.run(
            [
                *compose_command(),
                "-f",
                str(COMPOSE),
                "--env-file",
                str(secrets_env),
                "--profile",
                "streaming",
                "config",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env | extra,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["services"]

    default = services()
    assert set(default) == SERVICES | {"gate"}
    gate = default["gate"]
    assert gate["deploy"]["replicas"] == 2
    assert gate["command"] == ["regsync", "gate", "--forever", "--slots", "2"]
    assert gate["restart"] == "unless-stopped"  # a replica that finds every slot held exits 75
    assert "@postgres:5432/regsync" in gate["environment"]["REGSYNC_DATABASE_URL"]  # the locks
    assert gate["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    scaled = services(REGSYNC_GATE__REPLICAS="4")["gate"]
    # Replicas and slots come from one variable, so they cannot disagree.
    assert scaled["deploy"]["replicas"] == 4
    assert scaled["command"][-1] == "4"


def test_kafka_logins_as_rendered_by_compose(config, secrets_env):
    """Which service holds which Kafka password, after interpolation (the unit test reads the YAML)."""
    values = dict(line.split("=", 1) for line in secrets_env.read_text().splitlines() if "=" in line)
    services = config["services"]

    def holders(var: str) -> set[str]:
        return {
            name for name, svc in services.items() if values[var] in json.dumps(svc.get("environment", {}))
        }

    assert holders("KAFKA_ADMIN_PASSWORD") == {"kafka-secrets", "kafka-init"}
    assert holders("KAFKA_CONNECTOR_PASSWORD") == {"kafka-secrets", "airflow-scheduler"}
    assert holders("KAFKA_LOADER_PASSWORD") == {"kafka-secrets", "airflow-scheduler"}
    assert holders("KAFKA_GATE_PASSWORD") == {"kafka-secrets", "airflow-scheduler"}
    assert holders("KAFKA_REPORTS_PASSWORD") == {"kafka-secrets", "airflow-scheduler", "portal"}
    assert holders("KAFKA_BUREAU_PASSWORD") == {"kafka-secrets"}  # handed to the bureaus, held by no service
    assert "PLAINTEXT" not in json.dumps(config)

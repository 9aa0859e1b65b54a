"""The production compose file is valid, health-checked, has no default passwords, and has
the production shape: three KRaft brokers replicating every event topic 3 ways, N workers,
projectors, and Prometheus/Grafana wired to the shared files in infra/monitoring.

No Docker engine runs here; `docker compose config` (or Debian's `docker-compose config`)
validates and interpolates the file without one.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "infra" / "compose" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "infra" / "compose" / ".env.example"
MONITORING = ROOT / "infra" / "monitoring"
BROKERS = {"kafka-1", "kafka-2", "kafka-3"}
LONG_RUNNING = BROKERS | {
    "elasticsearch",
    "minio",
    "postgres",
    "worker",
    "projector",
    "search-projector",
    "api",
    "prometheus",
    "grafana",
}
ONE_SHOT = {"minio-buckets", "kafka-topics"}
ON_DEMAND = {"backup"}  # profile "ops": `docker compose --profile ops run --rm backup`


def _compose_cli() -> list[str]:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    pytest.fail("docker CLI without compose: run infra/local/install-system.sh (docker-compose)")


def _config(env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_compose_cli(), "-f", str(COMPOSE), "--env-file", str(env_file), "config", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def filled_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The example env file with every empty secret filled in."""
    filled: dict[str, str] = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = "MkU3OEVBNTcwNTJENDM2Qk" if name == "KAFKA_CLUSTER_ID" else secrets.token_hex(12)
        filled[name] = value
        return f"{name}={value}"

    text = re.sub(r"^(\w+)=$", fill, ENV_EXAMPLE.read_text(), flags=re.M)
    path = tmp_path / ".env"
    path.write_text(text)
    return path, filled


def test_compose_file_is_valid_with_every_service_health_checked(
    filled_env: tuple[Path, dict[str, str]],
) -> None:
    env_file, filled = filled_env
    result = _config(env_file)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT | ON_DEMAND
    for name in ON_DEMAND:
        assert services[name]["profiles"] == ["ops"]  # never started by `up`
    backup = services["backup"]
    assert backup["environment"]["PIAOXI_BACKUP_DIR"] == "/backups"
    # `docker compose config` prints volumes as mappings, Debian's docker-compose as strings
    targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in backup["volumes"]}
    assert "/backups" in targets
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no health check"
    assert services["elasticsearch"]["image"].split(":")[1].startswith("8.")
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"
    assert services["api"]["environment"]["PIAOXI_SEARCH_PASSWORD"] == filled["ELASTIC_PASSWORD"]
    assert filled["POSTGRES_PASSWORD"] in services["worker"]["environment"]["PIAOXI_DATABASE_URL"]


def test_every_secret_must_come_from_the_env_file() -> None:
    assert set(re.findall(r"^(\w+)=$", ENV_EXAMPLE.read_text(), flags=re.M)) >= {
        "KAFKA_CLUSTER_ID",
        "ELASTIC_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "POSTGRES_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    }
    result = _config(ENV_EXAMPLE)  # the example as shipped: secrets empty
    assert result.returncode != 0
    assert "in the env file" in result.stderr


def test_kafka_is_three_kraft_brokers_and_every_topic_is_replicated(
    filled_env: tuple[Path, dict[str, str]],
) -> None:
    env_file, filled = filled_env
    services = yaml.safe_load(_config(env_file).stdout)["services"]
    ids = set()
    for name in BROKERS:
        env = services[name]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["CLUSTER_ID"] == filled["KAFKA_CLUSTER_ID"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
            "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        )
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        ids.add(int(env["KAFKA_NODE_ID"]))
    assert ids == {1, 2, 3}
    volumes = {v.split(":")[0] for name in BROKERS for v in services[name]["volumes"]}
    assert len(volumes) == 3  # a log of its own per broker
    script = services["kafka-topics"]["command"][0]
    assert "--replication-factor 3" in script and "min.insync.replicas=2" in script
    for topic in ("uploaded", "pages", "cleaned", "entities", "failed"):
        assert topic in script
    assert "_schemas" in script and "cleanup.policy=compact" in script
    piaoxi = [n for n, s in services.items() if s.get("image", "").startswith("piaoxi:")]
    assert set(piaoxi) == {"worker", "projector", "search-projector", "api", "backup"}
    for name in piaoxi:
        env = services[name]["environment"]
        assert env["PIAOXI_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert int(env["PIAOXI_TOPIC_REPLICATION_FACTOR"]) == 3
        assert services[name]["depends_on"]["kafka-topics"]["condition"] == (
            "service_completed_successfully"
        )


def test_workers_scale_and_projectors_split(filled_env: tuple[Path, dict[str, str]]) -> None:
    env_file, _ = filled_env
    env_file.write_text(env_file.read_text() + "\nPIAOXI_WORKERS=5\n")
    services = yaml.safe_load(_config(env_file).stdout)["services"]
    assert services["worker"]["deploy"]["replicas"] == 5
    assert services["worker"]["command"] == ["worker"]
    assert services["projector"]["command"] == ["project", "--only", "postgres"]
    assert services["search-projector"]["command"] == ["project", "--only", "search"]


def test_prometheus_and_grafana_use_the_shared_monitoring_files(
    filled_env: tuple[Path, dict[str, str]],
) -> None:
    env_file, filled = filled_env
    services = yaml.safe_load(_config(env_file).stdout)["services"]

    def mounts(name: str) -> dict[str, str]:
        out = {}
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            out[target] = source
        return out

    prometheus = mounts("prometheus")
    assert Path(prometheus["/etc/prometheus/prometheus.yml"]) == MONITORING / "prometheus.yml"
    assert Path(prometheus["/etc/prometheus/piaoxi-alerts.yml"]) == (
        MONITORING / "piaoxi-alerts.yml"
    )
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert "/etc/prometheus/piaoxi-alerts.yml" in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["piaoxi-api"]["static_configs"] for t in sc["targets"]]
    assert "api:8000" in targets  # the compose service name and port of the API
    # every worker and projector replica, found by the compose service names, on the
    # health ports the services are given
    env = services["worker"]["environment"]
    worker_sd = jobs["piaoxi-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"]
    assert worker_sd["port"] == int(env["PIAOXI_WORKER_HEALTH_PORT"])
    projector_sd = jobs["piaoxi-projector"]["dns_sd_configs"][0]
    assert set(projector_sd["names"]) == {"projector", "search-projector"} <= set(services)
    assert projector_sd["port"] == int(env["PIAOXI_PROJECTOR_HEALTH_PORT"])

    grafana = mounts("grafana")
    dashboard = Path(grafana["/var/lib/grafana/dashboards/piaoxi.json"])
    assert dashboard == MONITORING / "grafana-dashboard.json"
    assert json.loads(dashboard.read_text())["panels"]
    provisioning = Path(grafana["/etc/grafana/provisioning"])
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "piaoxi.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    env = services["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == filled["GRAFANA_ADMIN_PASSWORD"]

"""The Kubernetes manifests and the monitoring files hold together (no cluster here).

What can be checked without a cluster is checked: every manifest parses, every workload
has probes and resource requests, the API is probed on its real health routes, no secret
value is committed, and every metric the dashboard and alerts query is one piaoxi exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.app import create_app
from api.metrics import ApiMetrics, PipelineGauges
from piaoxi.settings import Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"
MONITORING = INFRA / "monitoring"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _all_manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(_documents(K8S / name))
    return docs


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk - {"secret.example.yaml"}


def test_every_manifest_has_kind_api_version_and_name() -> None:
    for doc in _all_manifests():
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"]["name"], doc


@pytest.mark.parametrize("name", ["piaoxi-worker", "piaoxi-projector", "piaoxi-api"])
def test_deployments_have_probes_and_resources(name: str) -> None:
    deployments = {d["metadata"]["name"]: d for d in _all_manifests() if d["kind"] == "Deployment"}
    spec = deployments[name]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    for container in spec["template"]["spec"]["containers"]:
        assert "livenessProbe" in container and "readinessProbe" in container
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"piaoxi-config", "piaoxi-credentials"}


def test_api_probes_hit_routes_the_api_serves() -> None:
    api = next(d for d in _all_manifests() if d["metadata"]["name"] == "piaoxi-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    paths = set(create_app(Settings()).openapi()["paths"])
    assert container["livenessProbe"]["httpGet"]["path"] in paths
    assert container["readinessProbe"]["httpGet"]["path"] in paths


@pytest.mark.parametrize("name", ["piaoxi-worker", "piaoxi-projector"])
def test_worker_and_projector_probes_hit_their_health_server(name: str) -> None:
    deployment = next(d for d in _all_manifests() if d["metadata"]["name"] == name)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (port,) = container["ports"]
    config = next(d for d in _all_manifests() if d["kind"] == "ConfigMap")["data"]
    variable = (
        "PIAOXI_WORKER_HEALTH_PORT" if name == "piaoxi-worker" else "PIAOXI_PROJECTOR_HEALTH_PORT"
    )
    assert int(config[variable]) == port["containerPort"]
    assert config["PIAOXI_HEALTH_HOST"] == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": port["name"]}


def test_worker_autoscaler_targets_the_worker_deployment() -> None:
    hpas = [d for d in _all_manifests() if d["kind"] == "HorizontalPodAutoscaler"]
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    assert "piaoxi-worker" in targets


def test_kafka_is_replicated_three_times() -> None:
    docs = _all_manifests()
    pool = next(d for d in docs if d["kind"] == "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    assert kafka["spec"]["kafka"]["config"]["default.replication.factor"] == 3
    topics = [d for d in docs if d["kind"] == "KafkaTopic"]
    assert topics and all(t["spec"]["replicas"] == 3 for t in topics)
    # a topic piaoxi creates itself (one missing from topics.yaml) is replicated as well
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["PIAOXI_TOPIC_REPLICATION_FACTOR"] == "3"


def test_no_secret_value_is_committed() -> None:
    for doc in _documents(K8S / "secret.example.yaml"):
        assert all(value == "" for value in doc["stringData"].values())
    config = next(d for d in _all_manifests() if d["kind"] == "ConfigMap")
    assert not any(re.search("PASSWORD|SECRET|ACCESS_KEY", key) for key in config["data"])


def _queried_metrics() -> set[str]:
    exprs: list[str] = []
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    alerts = yaml.safe_load((MONITORING / "piaoxi-alerts.yml").read_text())
    exprs += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    names = set()
    for expr in exprs:
        names |= set(re.findall(r"piaoxi_[a-z0-9_]+", expr))
    return names


def test_dashboard_and_alerts_query_only_exported_metrics() -> None:
    exported: set[str] = set()
    families = [*ApiMetrics().registry.collect(), *PipelineGauges().registry.collect()]
    for family in families:
        # a family without samples yet still names its series: counters end in _total,
        # histograms are queried through _bucket
        exported |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    missing = _queried_metrics() - exported
    assert not missing, f"dashboard/alerts query metrics piaoxi does not export: {missing}"


def test_backups_run_nightly_onto_their_own_volume() -> None:
    manifests = _all_manifests()
    (cron,) = [d for d in manifests if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # never two backups at once
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["backup"]
    backup_dir = {e["name"]: e["value"] for e in container["env"]}["PIAOXI_BACKUP_DIR"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == backup_dir
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claims = {d["metadata"]["name"] for d in manifests if d["kind"] == "PersistentVolumeClaim"}
    assert volume["persistentVolumeClaim"]["claimName"] in claims

"""Metrics in deploy/ (docs/operations.md, "Metrics"): Prometheus in compose
scrapes every node at the port its node.toml opens, Grafana is provisioned
with that Prometheus and the dashboard, and the dashboard queries only
metrics a node exposes. Docker is not run here: the files are checked
against each other and against the collector."""
from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import yaml

from tests.node.test_metrics import FAMILIES

from .test_deploy_files import COMPOSE_DIR, DEPARTMENTS, DEPLOY, compose, mounts, node_config

DASHBOARD = DEPLOY / "grafana" / "govchain.json"
SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
EXPOSED = {name + suffix for name, kind in FAMILIES.items() for suffix in SUFFIXES[kind]} | {"up"}


def metrics_port(department: str) -> int:
    config = node_config(COMPOSE_DIR / department / "node.toml")
    assert config.metrics is not None, f"deploy/compose/{department}/node.toml: add [metrics] listen"
    return config.metrics.listen.port


def service_file(service: dict, container_path: str) -> str:
    source, read_only = mounts(service)[container_path]
    assert read_only, f"mount {container_path} read-only"
    assert (COMPOSE_DIR / source).is_file(), f"deploy/compose/compose.yaml mounts {source}, which does not exist"
    return (COMPOSE_DIR / source).read_text()


def test_compose_prometheus_scrapes_every_department_at_its_metrics_port():
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_path = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    config = yaml.safe_load(service_file(prometheus, config_path))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "govchain"]
    targets = {(t, group["labels"]["node"]) for group in job["static_configs"] for t in group["targets"]}
    assert targets == {(f"{d}:{metrics_port(d)}", d) for d in DEPARTMENTS}, \
        "deploy/compose/prometheus/prometheus.yml: one target <service>:<[metrics] port> labelled node=<department> " \
        "per department"
    assert all(d in services for d in DEPARTMENTS)
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert all(p.startswith("127.0.0.1:") for p in service["ports"]), f"{name}: publish on 127.0.0.1 only"
        assert service["read_only"] and service["cap_drop"] == ["ALL"] and service["security_opt"], \
            f"deploy/compose/compose.yaml services.{name}: read_only, cap_drop ALL, no-new-privileges"
        assert service["networks"] == ["govchain"]


def test_compose_grafana_is_provisioned_with_prometheus_and_the_dashboard():
    services = compose()["services"]
    grafana = services["grafana"]
    m = mounts(grafana)
    sources = {t: s for t, (s, _) in m.items()}
    (datasource_path,) = [t for t in m if t.startswith("/etc/grafana/provisioning/datasources/")]
    (provider_path,) = [t for t in m if t.startswith("/etc/grafana/provisioning/dashboards/")]
    (datasource,) = yaml.safe_load(service_file(grafana, datasource_path))["datasources"]
    prometheus_port = int(services["prometheus"]["ports"][0].split(":")[-1])
    assert datasource["type"] == "prometheus" and datasource["url"] == f"http://prometheus:{prometheus_port}"
    (provider,) = yaml.safe_load(service_file(grafana, provider_path))["providers"]
    folder = provider["options"]["path"]
    dashboards = [t for t in m if PurePosixPath(t).parent == PurePosixPath(folder)]
    assert [(COMPOSE_DIR / sources[t]).resolve() for t in dashboards] == [DASHBOARD.resolve()], \
        f"deploy/compose/compose.yaml: mount ../grafana/govchain.json into the provider's folder {folder}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in dashboards
    uids = {t["datasource"]["uid"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}, "the dashboard's panels must use the provisioned datasource's uid"


def test_dashboard_queries_only_metrics_a_node_exposes_and_has_the_operator_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "govchain"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    used = set()
    for panel in panels:
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            names = set(re.findall(r"\b(govchain_[a-z_]+|up)\b(?=\s*[{\[(]|\s*$)", target["expr"]))
            assert names, f"{panel['title']}: {target['expr']} queries no metric"
            assert names <= EXPOSED, f"{panel['title']}: {sorted(names - EXPOSED)} are not metrics a node exposes"
            used |= names
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("height", "view change", "commit latency", "committed transactions", "refusals", "dropped",
                  "peers", "fsync", "verification queries", "verification query latency"):
        assert topic in titles, f"deploy/grafana/govchain.json: add a panel for {topic}"
    assert {"govchain_commit_latency_seconds_bucket", "govchain_fsync_duration_seconds_bucket",
            "govchain_transactions_committed_total", "govchain_view_changes_total",
            "govchain_verification_queries_total", "govchain_verification_query_seconds_bucket"} <= used
    for histogram in ("commit_latency", "verification_query_seconds"):
        quantiles = {q for p in panels for t in p["targets"] if histogram in t["expr"]
                     for q in re.findall(r"histogram_quantile\((0\.\d+)", t["expr"])}
        assert quantiles == {"0.5", "0.99"}, f"{histogram}: p50 and p99"
    for variable in dashboard["templating"]["list"]:
        assert re.search(r"label_values\((govchain_[a-z_]+),", variable["query"]["query"]).group(1) in EXPOSED

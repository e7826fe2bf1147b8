"""compose.yaml cannot run here (no Docker engine), so its structure is checked instead:
the services an operator relies on exist and run commands the CLI really has."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from core import deliverability, metric_families, observability
from jobs.app import QUEUES, TIER_QUEUES
from smsgw.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _smsgw_services(compose):
    return {
        name: svc for name, svc in compose["services"].items() if svc.get("image") == "smsgw:latest"
    }


def test_every_smsgw_service_runs_a_real_cli_command_from_one_image(compose):
    parser = build_parser()
    services = _smsgw_services(compose)
    assert {"api", "migrate", "worker-vip", "worker-premium", "worker-standard"} <= set(services)
    for name, svc in services.items():
        command = svc["command"]
        assert command[0] == "smsgw", name
        args = parser.parse_args(command[1:])  # exits (fails the test) on an unknown flag
        if args.command == "worker":
            queues = args.queues.split(",")
            assert set(queues) <= set(QUEUES), (name, queues)
    assert (ROOT / "Dockerfile").exists()


def test_each_tier_has_its_own_worker_pool_and_every_queue_is_served(compose):
    parser = build_parser()
    served: dict[str, list[str]] = {}
    for name, svc in _smsgw_services(compose).items():
        args = parser.parse_args(svc["command"][1:])
        if args.command == "worker":
            for queue in args.queues.split(","):
                served.setdefault(queue, []).append(name)
    for tier in TIER_QUEUES:
        assert len(served[tier]) == 1
        assert served[tier][0] == f"worker-{tier}"
    assert set(served) == set(QUEUES)


def test_database_primary_replica_and_health_checks(compose):
    services = compose["services"]
    assert "pg_basebackup" in " ".join(services["replica"]["entrypoint"])
    for name in ("primary", "replica", "api", "lb"):
        assert "healthcheck" in services[name], name
    api_env = compose["x-smsgw"]["environment"]
    assert "@pooler:" in api_env["DATABASE_URL"]
    assert "@primary:" in api_env["DIRECT_DATABASE_URL"]
    assert "@replica:" in api_env["REPORTING_DATABASE_URL"]
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["lb"]["ports"] == ["8000:8000"]
    assert "/ready" in " ".join(services["api"]["healthcheck"]["test"])


def test_prometheus_scrapes_every_api_replica(compose):
    prometheus = compose["services"]["prometheus"]
    assert "healthcheck" in prometheus
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load((ROOT / mounted["/etc/prometheus/prometheus.yml"]).read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    # One target per API replica (DNS A records of the `api` service), on its real port,
    # rather than the load balancer, which would mix the replicas' HTTP counters.
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["api"]
    assert sd["type"] == "A"
    assert str(sd["port"]) == compose["services"]["api"]["expose"][0]


def test_the_smpp_listener_is_a_service_reachable_on_its_port(compose):
    smpp = compose["services"]["smpp"]
    assert smpp["image"] == "smsgw:latest"
    args = build_parser().parse_args(smpp["command"][1:])
    assert args.command == "smpp"
    assert args.host == "0.0.0.0"  # noqa: S104 - reachable from outside its container
    # Published on the port it listens on, and its health check knocks on that port.
    assert smpp["ports"] == [f"{args.port}:{args.port}"]
    assert f"{args.port}), 3)" in " ".join(smpp["healthcheck"]["test"])
    # The same database as the API and workers (bind limits and receipts live there):
    # through the pooler, and its bind slots (session advisory locks) direct.
    assert smpp["environment"]["DATABASE_URL"] == compose["x-smsgw"]["environment"]["DATABASE_URL"]
    assert "@primary:" in smpp["environment"]["DIRECT_DATABASE_URL"]
    # The image has the package that serves it (every package the project installs).
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, package


def test_prometheus_loads_the_shipped_alerting_rules_on_series_the_gateway_exports(compose):
    # promtool is not installed here: the rules file is checked for structure, and every
    # series a rule reads is one /metrics exports.
    prometheus = compose["services"]["prometheus"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load((ROOT / mounted["/etc/prometheus/prometheus.yml"]).read_text())
    # ops/compose/alerts.yml and ops/prometheus/alerts.yml (exposure controls, issue 25).
    rule_files = [yaml.safe_load((ROOT / mounted[p]).read_text()) for p in config["rule_files"]]
    alert = deliverability.Alert(
        country="GB",
        provider="p",
        hour_known=1,
        hour_rate=0.5,
        week_known=1,
        week_rate=0.9,
        firing=True,
        since=None,
    )
    snapshot = observability.Snapshot(
        at=datetime.now(UTC),
        took_seconds=0.0,
        counters=[],
        queue=[],
        in_flight=0,
        providers=[],
        ledger=[],
        jobs=[],
        callbacks_due=0,
        receipts_waiting=0,
        delivery=[alert],
        rollup_frontier=datetime.now(UTC),
    )
    exported = {family.name for family in metric_families.families(snapshot, None)}
    alerts = {
        rule["alert"]: rule
        for rules in rule_files
        for group in rules["groups"]
        for rule in group["rules"]
    }
    assert set(alerts) == {
        "SmsgwDeliveryRateDropped",
        "SmsgwRollupsBehind",
        "SmsgwDestinationSuspended",
        "SmsgwManyDestinationsSuspended",
        "SmsgwTenantsBelowBalanceThreshold",
    }
    assert {"smsgw_suspensions_active", "smsgw_tenants_below_balance_threshold"} <= exported
    for rule in alerts.values():
        assert set(re.findall(r"smsgw_[a-z_]+", rule["expr"])) <= exported, rule["expr"]
        assert set(rule["annotations"]) == {"summary", "description"}
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}


def test_every_smsgw_process_goes_through_pgbouncer_in_transaction_mode(compose):
    services = compose["services"]
    pooler = services["pooler"]
    assert "healthcheck" in pooler
    dockerfile = (ROOT / pooler["build"]["dockerfile"]).read_text()
    assert "apt-get install" in dockerfile
    assert "pgbouncer" in dockerfile
    assert "USER postgres" in dockerfile  # PgBouncer refuses to run as root
    ini = (ROOT / "ops/compose/pgbouncer.ini").read_text()
    assert re.search(r"^pool_mode = transaction$", ini, re.MULTILINE)
    assert "host=primary port=5432" in ini
    env = compose["x-smsgw"]["environment"]
    # Transaction pooling: no prepared statements, and a direct URL for LISTEN/migrations.
    assert env["SMSGW_DB_PREPARED_STATEMENTS"] == "false"
    assert env["DATABASE_URL"].endswith("@pooler:6432/smsgw")
    for name, svc in _smsgw_services(compose).items():
        if name != "migrate":
            assert svc["depends_on"]["pooler"]["condition"] == "service_healthy", name
    # Migrations never go through the pooler.
    assert "@primary:" in services["migrate"]["environment"]["DATABASE_URL"]

"""The Helm chart in helm/remediator, rendered offline with the Helm SDK (helm-python-sdk).

Three value sets (the defaults; HA on PostgreSQL; everything on) are rendered and every
manifest is validated against the Kubernetes schemas with kubernetes-validate in strict
mode (unknown fields are errors), for the oldest and newest Kubernetes it knows. The
chart's RBAC must be exactly what ``remediator rbac`` prints, its remediator.yaml must
load as the server's Settings, and the dashboard may only query metrics the server
exports.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from remediator import cli
from remediator.actions.registry import builtin_actions
from remediator.authoring.rbac import merged_rules
from remediator.context.capture import RBAC as CONTEXT_RULES
from remediator.observability.metrics import Metrics
from remediator.runbooks.loader import load_dir
from remediator.settings import Settings
from tests.chart import sync

CHART = sync.CHART
RELEASE, NAMESPACE = "remediator", "monitoring"
KUBE_VERSIONS = ("1.25", kubernetes_validate.latest_version())
OPERATOR_GROUP = "monitoring.coreos.com/v1"

DEFAULTS: dict[str, Any] = {}
HA_POSTGRES: dict[str, Any] = {
    "replicaCount": 3,
    "store": {"postgres": {"enabled": True, "existingSecret": "remediator-db"}},
    "auth": {"existingSecret": "alertmanager-webhook"},
    "podDisruptionBudget": {"minAvailable": 2},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "remediator"}},
        }
    ],
}
EVERYTHING: dict[str, Any] = {
    "image": {"digest": "sha256:" + "ab" * 32},
    "imagePullSecrets": [{"name": "registry"}],
    "config": {
        "server": {"external_url": "https://remediator.example.com"},
        "auth": {"username": "alertmanager"},
        "guards": {
            "dry_run": False,
            "namespaces": {"allow": ["prod-*", "staging"], "deny": ["kube-system"]},
            "kinds": {"allow": ["Deployment", "StatefulSet"]},
        },
        "slack": {"channel": "C0123456789", "approvers": ["S0614TZR7"]},
        "kube": {"server_dry_run": True},
        "log": {"level": "debug", "format": "console"},
    },
    "auth": {"existingSecret": "webhook", "tokenKey": "token", "passwordKey": "password"},
    "slack": {"existingSecret": "slack-app"},
    "store": {"persistence": {"existingClaim": "remediator-sqlite"}},
    "runbooks": {
        "inline": {
            "restart-statefulsets": {
                "name": "restart-statefulsets",
                "version": 1,
                "owner": "platform",
                "match": ['alertname="StatefulSetStuck"'],
                "target": {
                    "kind": "StatefulSet",
                    "namespace": "{{ labels.namespace }}",
                    "name": "{{ labels.statefulset }}",
                },
                "steps": [{"action": "restart"}],
            },
        }
    },
    "rbac": {"actions": ["notify", "restart", "scale"], "namespaces": ["prod-web", "staging"]},
    "serviceAccount": {"annotations": {"example.com/role": "remediator"}},
    "service": {"annotations": {"example.com/owner": "platform"}},
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"team": "platform"},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [
                            {"key": "node-role", "operator": "In", "values": ["ops"]}
                        ]
                    },
                }
            ]
        }
    },
    "extraEnv": [{"name": "REMEDIATOR_WORKER__BATCH_SIZE", "value": "64"}],
    "networkPolicy": {
        "ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443, "protocol": "TCP"}]}],
    },
    "serviceMonitor": {"enabled": True, "scrapeTimeout": "10s", "labels": {"release": "kps"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
    "dashboard": {
        "enabled": True,
        "namespace": "grafana",
        "annotations": {"grafana_folder": "Ops"},
    },
}
VALUE_SETS = {"defaults": DEFAULTS, "ha-postgres": HA_POSTGRES, "everything": EVERYTHING}

_yaml = YAML(typ="safe", pure=True)


class Rendered:
    """One render: the manifests by kind and name, and NOTES.txt."""

    def __init__(self, files: dict[str, str]) -> None:
        self.notes = files.pop(f"{CHART.name}/templates/NOTES.txt", "")
        self.docs: list[dict[str, Any]] = [
            doc for text in files.values() for doc in _yaml.load_all(text) if doc
        ]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
        return found[0]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        container: dict[str, Any] = containers[0]
        return container

    def env(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.container.get("env", [])}

    def config(self) -> dict[str, Any]:
        text = self.one("ConfigMap", f"{RELEASE}-config")["data"]["remediator.yaml"]
        config: dict[str, Any] = _yaml.load(text)
        return config


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm_python.Chart, values: dict[str, Any]) -> Rendered:
    return Rendered(chart.render(values, name=RELEASE, namespace=NAMESPACE))


@pytest.fixture(scope="module", params=list(VALUE_SETS), ids=list(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, chart: helm_python.Chart) -> Rendered:
    return render(chart, VALUE_SETS[request.param])


def test_the_validator_rejects_unknown_fields() -> None:
    """kubernetes-validate --strict is not vacuous."""
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)


def test_lint_is_clean() -> None:
    for values in VALUE_SETS.values():
        report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE)
        assert report["errors"] == []
        # Severity 1 is informational ("icon is recommended"); 2 warnings, 3 errors.
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_is_valid_kubernetes(rendered: Rendered) -> None:
    kinds = set()
    for doc in rendered.docs:
        kinds.add(doc["kind"])
        assert doc["metadata"]["name"]
        if doc["apiVersion"] == OPERATOR_GROUP:
            continue  # CRDs: see test_prometheus_operator_resources
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "PodDisruptionBudget"} <= kinds
    assert {"NetworkPolicy"} <= kinds


def test_default_rbac_equals_remediator_rbac(
    chart: helm_python.Chart, capsys: pytest.CaptureFixture[str]
) -> None:
    # Context capture is on by default in a cluster, so its reads are in the defaults.
    assert cli.main(["rbac", "--all", "--context"]) == 0
    expected = _yaml.load(capsys.readouterr().out)
    role = render(chart, DEFAULTS).one("ClusterRole")
    assert role["rules"] == expected["rules"]
    assert expected["rules"], "the built-in actions need some permissions"


def test_rbac_for_the_shipped_runbooks_equals_remediator_rbac(
    chart: helm_python.Chart, capsys: pytest.CaptureFixture[str]
) -> None:
    runbooks = load_dir(CHART / "files" / "runbooks", builtin_actions())
    used = sorted({s.action for r in runbooks.runbooks for s in (*r.spec.steps, *r.spec.escalate)})
    assert cli.main(["rbac", "--runbooks", str(CHART / "files" / "runbooks")]) == 0
    expected = _yaml.load(capsys.readouterr().out)
    role = render(chart, {"rbac": {"actions": used, "context": False}}).one("ClusterRole")
    assert role["rules"] == expected["rules"]


def test_rbac_merges_any_set_of_actions_as_remediator_does(chart: helm_python.Chart) -> None:
    actions = builtin_actions()
    names = sorted(actions)
    # None, each alone, all but each, all: every pair of actions meets in some set.
    for size in (0, 1, len(names) - 1, len(names)):
        for chosen in combinations(names, size):
            values = {"rbac": {"actions": list(chosen), "context": False}}
            rules = render(chart, values).one("ClusterRole")["rules"]
            assert rules == merged_rules(actions[n] for n in chosen), chosen
    with_context = render(chart, {"rbac": {"actions": ["notify"]}}).one("ClusterRole")["rules"]
    assert with_context == merged_rules([actions["notify"]], CONTEXT_RULES)


def test_namespaced_rbac_is_a_role_per_namespace(chart: helm_python.Chart) -> None:
    out = render(chart, EVERYTHING)
    assert out.all("ClusterRole") == []
    assert out.all("ClusterRoleBinding") == []
    expected = merged_rules(
        (builtin_actions()[n] for n in EVERYTHING["rbac"]["actions"]), CONTEXT_RULES
    )
    roles = out.all("Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["prod-web", "staging"]
    for role in roles:
        assert role["rules"] == expected
    for binding in out.all("RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
        ]


def test_derived_files_are_current() -> None:
    assert sync.stale() == [], "the chart's copies are stale: run `python -m tests.chart.sync`"


def test_the_rendered_config_loads_as_settings(
    rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("REMEDIATOR_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "remediator.yaml"
    path.write_text(
        rendered.one("ConfigMap", f"{RELEASE}-config")["data"]["remediator.yaml"], "utf-8"
    )
    settings = Settings.load(path)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == rendered.container["ports"][0]["containerPort"] == 9595
    assert str(settings.runbooks.dir) == _mount(rendered, "runbooks")["mountPath"]
    config_mount = _mount(rendered, "config")["mountPath"]
    assert rendered.container["args"] == ["--config", f"{config_mount}/remediator.yaml"]
    if "REMEDIATOR_STORE__URL" in rendered.env():
        assert "store" not in rendered.config()
    else:
        data = _mount(rendered, "data")["mountPath"]
        assert settings.store.url == f"sqlite+aiosqlite:///{data}/remediator.db"


def test_shadow_mode_and_no_namespaces_by_default(chart: helm_python.Chart) -> None:
    config = render(chart, DEFAULTS).config()
    assert config["guards"]["dry_run"] is True
    assert config["guards"]["namespaces"]["allow"] == []
    assert "auth" not in config
    assert "slack" not in config


def _mount(rendered: Rendered, volume: str) -> dict[str, Any]:
    mounts = [m for m in rendered.container["volumeMounts"] if m["name"] == volume]
    assert len(mounts) == 1, volume
    mount: dict[str, Any] = mounts[0]
    return mount


def test_the_pod_is_locked_down(rendered: Rendered) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = rendered.container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert rendered.container["resources"]["requests"]
    # Everything the server writes is on a volume: the root filesystem is read-only.
    writable = {m["mountPath"] for m in rendered.container["volumeMounts"] if not m.get("readOnly")}
    assert "/tmp" in writable
    if "REMEDIATOR_STORE__URL" not in rendered.env():
        assert "/data" in writable


def test_probes_use_the_health_endpoints(rendered: Rendered) -> None:
    c = rendered.container
    assert c["ports"] == [{"name": "http", "containerPort": 9595, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_selectors_match_the_pods(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        rendered.one("Service")["spec"]["selector"],
        rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        rendered.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == rendered.one("ServiceAccount")["metadata"]["name"]


def test_default_credentials_are_a_generated_secret(chart: helm_python.Chart) -> None:
    out = render(chart, DEFAULTS)
    secret = out.one("Secret", f"{RELEASE}-auth")
    assert len(secret["data"]["token"]) >= 40
    assert out.env()["REMEDIATOR_AUTH__BEARER_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": f"{RELEASE}-auth", "key": "token"}
    }
    assert set(out.env()) == {"REMEDIATOR_AUTH__BEARER_TOKEN"}


def test_secrets_are_referenced_not_rendered(chart: helm_python.Chart) -> None:
    out = render(chart, EVERYTHING)
    assert out.all("Secret") == []
    refs = {
        name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, e in out.env().items()
        if "valueFrom" in e
    }
    assert refs == {
        "REMEDIATOR_AUTH__BEARER_TOKEN": ("webhook", "token"),
        "REMEDIATOR_AUTH__PASSWORD": ("webhook", "password"),
        "REMEDIATOR_SLACK__BOT_TOKEN": ("slack-app", "bot-token"),
        "REMEDIATOR_SLACK__SIGNING_SECRET": ("slack-app", "signing-secret"),
    }
    assert out.env()["REMEDIATOR_WORKER__BATCH_SIZE"]["value"] == "64"
    assert out.container["image"] == "ghcr.io/remediator/remediator@sha256:" + "ab" * 32


def test_ha_runs_on_postgresql(chart: helm_python.Chart) -> None:
    out = render(chart, HA_POSTGRES)
    deployment = out.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert out.env()["REMEDIATOR_STORE__URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "remediator-db", "key": "dsn"}
    }
    assert out.all("PersistentVolumeClaim") == []
    assert out.one("PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": deployment["spec"]["selector"],
    }


def test_sqlite_is_one_replica_on_a_volume(chart: helm_python.Chart) -> None:
    out = render(chart, DEFAULTS)
    deployment = out.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pvc = out.one("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    ephemeral = render(chart, {"store": {"persistence": {"enabled": False}}})
    assert ephemeral.all("PersistentVolumeClaim") == []
    volumes = {
        v["name"]: v for v in ephemeral.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 2}, "SQLite has a single writer"),
        ({"store": {"postgres": {"enabled": True}}}, "needs store.postgres.existingSecret"),
        ({"config": {"store": {"url": "sqlite+aiosqlite:///x.db"}}}, "config.store.url is set"),
        ({"config": {"server": {"port": 8080}}}, "config.server.port is set by the chart"),
        ({"config": {"runbooks": {"dir": "/x"}}}, "config.runbooks.dir is set"),
        ({"config": {"auth": {"bearer_token": "t"}}}, "would put a secret into a ConfigMap"),
        ({"config": {"slack": {"bot_token": "x"}}}, "would put a secret into a ConfigMap"),
        ({"rbac": {"actions": ["restart", "reboot"]}}, 'unknown action "reboot"'),
        ({"auth": {"tokenKey": ""}}, "refuses to start without credentials"),
        ({"auth": {"existingSecret": "s", "passwordKey": "p"}}, "needs config.auth.username"),
        ({"runbooks": {"builtin": False}}, "no runbooks at all"),
    ],
)
def test_values_that_cannot_work_fail_with_a_clear_message(
    chart: helm_python.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        render(chart, values)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicas": 2}, "replicas"),
        ({"config": {"guards": {"dry_run": "no"}}}, "/config/guards/dry_run"),
        ({"service": {"port": 0}}, "/service/port"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"serviceMonitor": {"interval": "soon"}}, "/serviceMonitor/interval"),
        ({"rbac": {"namespaces": ["Not_A_Namespace"]}}, "/rbac/namespaces/0"),
    ],
)
def test_the_values_schema_refuses_bad_values(
    chart: helm_python.Chart, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=re.escape(where)):
        render(chart, values)


def test_the_runbooks_configmap_holds_loadable_runbooks(
    chart: helm_python.Chart, tmp_path: Path
) -> None:
    out = render(chart, EVERYTHING)
    data = out.one("ConfigMap", f"{RELEASE}-runbooks")["data"]
    shipped = {p.name for p in (CHART / "files" / "runbooks").glob("*.yaml")}
    assert set(data) == shipped | {"restart-statefulsets.yaml"}
    for name, text in data.items():
        (tmp_path / name).write_text(text, "utf-8")
    loaded = load_dir(tmp_path, builtin_actions())
    assert len(loaded.runbooks) == len(data)
    own = render(chart, {"runbooks": {"existingConfigMap": "team-runbooks"}})
    assert [c["metadata"]["name"] for c in own.all("ConfigMap")] == [f"{RELEASE}-config"]
    volumes = own.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "runbooks", "configMap": {"name": "team-runbooks"}} in volumes


def test_monitoring_is_off_by_default(chart: helm_python.Chart) -> None:
    out = render(chart, DEFAULTS)
    assert [d for d in out.docs if d["apiVersion"] == OPERATOR_GROUP] == []
    assert [c for c in out.all("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]] == []


def test_prometheus_operator_resources(chart: helm_python.Chart, tmp_path: Path) -> None:
    out = render(chart, EVERYTHING)
    monitor = out.one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        out.one("Service")["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert out.one("Service")["spec"]["ports"][0]["name"] == "http"

    rule = out.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert set(rule["spec"]) == {"groups"}
    expected = [
        group
        for path in sorted((CHART / "files" / "rules").glob("*.yaml"))
        for group in _yaml.load(path.read_text("utf-8"))["groups"]
    ]
    assert expected, "the chart ships the rules of rules/"
    assert rule["spec"]["groups"] == expected
    promtool = shutil.which("promtool")
    if promtool is not None:  # scripts/test.sh installs it
        rules_file = tmp_path / "rules.yaml"
        rules_file.write_text(json.dumps(rule["spec"]), "utf-8")
        result = subprocess.run(
            [promtool, "check", "rules", str(rules_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_ships_in_a_sidecar_configmap(chart: helm_python.Chart) -> None:
    out = render(chart, EVERYTHING)
    config_map = out.one("ConfigMap", f"{RELEASE}-dashboard")
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Ops"}
    shipped = (CHART / "files" / "dashboards" / "remediator.json").read_text("utf-8")
    assert json.loads(config_map["data"]["remediator.json"]) == json.loads(shipped)


def test_network_policy_admits_only_the_server_port(chart: helm_python.Chart) -> None:
    default = render(chart, DEFAULTS).one("NetworkPolicy")["spec"]
    assert default["policyTypes"] == ["Ingress"]
    assert default["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    restricted = render(chart, EVERYTHING).one("NetworkPolicy")["spec"]
    assert restricted["policyTypes"] == ["Ingress", "Egress"]
    assert restricted["ingress"][0]["from"] == EVERYTHING["networkPolicy"]["ingressFrom"]
    assert restricted["egress"] == EVERYTHING["networkPolicy"]["egress"]


def test_notes_show_the_alertmanager_receiver(rendered: Rendered, tmp_path: Path) -> None:
    notes = rendered.notes
    url = f"http://{RELEASE}.{NAMESPACE}.svc:9595/api/v1/alerts"
    block = re.search(r"^( +)route:\n(?:\1.+\n)+", notes, re.MULTILINE)
    assert block is not None, notes
    snippet = _yaml.load(io.StringIO(re.sub(r"#.*", "", block.group(0))))
    (receiver,) = snippet["receivers"]
    (route,) = snippet["route"]["routes"]
    assert route["receiver"] == receiver["name"]
    assert route["continue"] is True
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == url
    assert webhook["send_resolved"] is True
    secret = rendered.env()["REMEDIATOR_AUTH__BEARER_TOKEN"]["valueFrom"]["secretKeyRef"]
    credentials = webhook["http_config"]["authorization"]["credentials_file"]
    assert credentials.endswith(f"/{secret['name']}/{secret['key']}")
    assert ("SHADOW MODE" in notes) == rendered.config()["guards"]["dry_run"]
    amtool = shutil.which("amtool")
    if amtool is not None:  # scripts/test.sh installs it: Alertmanager accepts the snippet
        snippet["route"]["receiver"] = "default"
        snippet["receivers"].append({"name": "default"})
        config = tmp_path / "alertmanager.yml"
        config.write_text(json.dumps(snippet), "utf-8")
        result = subprocess.run(
            [amtool, "check-config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _exported_metric_names() -> set[str]:
    """Every series name the server's registry can expose, labelled or not."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "label_values", "label_replace", "clamp_min", "clamp_max",
    "abs", "ceil", "floor", "round", "vector", "scalar", "time", "absent", "changes", "resets",
    "sum_over_time", "avg_over_time", "max_over_time", "min_over_time", "count_over_time",
    "last_over_time", "sort", "sort_desc",
}  # fmt: skip


def _queries(dashboard: dict[str, Any]) -> list[str]:
    panels = [
        *dashboard["panels"],
        *(p for row in dashboard["panels"] for p in row.get("panels", [])),
    ]
    queries = [t["expr"] for p in panels for t in p.get("targets", [])]
    queries += [
        v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return queries


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label sets and ranges removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    if text.startswith("label_values("):  # label_values(metric, label)
        words -= {text.rstrip(")").rsplit(",", 1)[-1].strip()}
    return words - _PROMQL_WORDS


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((CHART / "files" / "dashboards" / "remediator.json").read_text("utf-8"))
    assert dashboard["schemaVersion"] >= 39
    exported = _exported_metric_names()
    used: set[str] = set()
    queries = _queries(dashboard)
    assert queries
    for expr in queries:
        names = _metric_names(expr)
        assert names, expr
        assert names <= exported, f"{sorted(names - exported)} are not exported: {expr}"
        used |= names
    # Alerts, actions by result, blocks by reason, approvals, queue depth and latency.
    for needed in (
        "remediator_alerts_received_total",
        "remediator_actions_total",
        "remediator_guard_blocks_total",
        "remediator_approval_decisions_total",
        "remediator_work_queue_depth",
        "remediator_http_request_duration_seconds_bucket",
    ):
        assert needed in used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_the_metric_name_check_catches_an_unknown_metric() -> None:
    assert _metric_names('sum by (reason) (rate(remediator_nope_total{job=~"$job"}[5m]))') == {
        "remediator_nope_total"
    }
    assert not {"remediator_nope_total"} <= _exported_metric_names()

"""deploy/helm/klag: `helm lint` passes, `helm template` renders with the default values and
with every option on (mTLS, ServiceMonitor, NetworkPolicy, PodDisruptionBudget, dashboard), every
object validates (kubecheck: Kubernetes' schema and prometheus-operator's ServiceMonitor; KEDA's
CRD schemas), and the chart renders what the Kustomize tree renders (image, args, env, ports,
probes, securityContext, resources, Services, profiles, PDB, NetworkPolicy; with the default
tls.enabled what the default deploy/ adds, without it what deploy/scaler renders).

Run: scripts/tools.sh && python3 -m pytest tests/deploy (ctest: deploy_manifests_test).
"""
import json
import os
import re
import subprocess

import pytest
import yaml

from deploy_tools import (CHART, RELEASE_NAMESPACE, ROOT, find, helm_template,
                          helm_template_error, kubecheck, kustomize_build, one, tool,
                          validation_errors)

SCALER = "klag-scaler"
# Every option on, as docs/deploy.md's Helm example.
FULL = {
    "tls": {"enabled": True, "triggerAuthentication": {"namespaces": ["data-load"]}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"enabled": True},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "dashboard": {"enabled": True},
}
DASHBOARD = os.path.join(CHART, "dashboards", "klag.json")
SCALER_METRICS_SOURCE = os.path.join(ROOT, "scaler", "metrics", "scaler_metrics.cc")


def scaler_metric_names():
    """Every metric family name klag-scaler registers (string literals klag_... in its metrics
    source), with the series names a histogram adds."""
    with open(SCALER_METRICS_SOURCE, encoding="utf-8") as f:
        names = set(re.findall(r'"(klag_[a-z0-9_]+)"', f.read()))
    return names | {n + suffix for n in names for suffix in ("_bucket", "_sum", "_count")}


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def container(doc):
    (c,) = pod_spec(doc)["containers"]
    return c


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(klag VERSION ([0-9.]+)", f.read()).group(1)


def chart():
    with open(os.path.join(CHART, "Chart.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


# ---------------------------------------------------------------- lint, render, validate

@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
def test_helm_lint_strict(values, tmp_path):
    args = [tool("helm"), "lint", "--strict", CHART, "--namespace", RELEASE_NAMESPACE]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["--values", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_chart_version_is_the_projects():
    c = chart()
    assert c["version"] == project_version()
    assert c["appVersion"] == project_version()
    deployment = one(helm_template(), "Deployment", SCALER)
    assert container(deployment)["image"] == f"klag-scaler:{project_version()}"


@pytest.mark.parametrize("values", [None, FULL, {"metrics": {"enabled": False}}],
                         ids=["default", "full", "no-metrics"])
def test_every_rendered_object_validates(values):
    docs = helm_template(values)
    assert docs
    assert validation_errors(docs) == []
    for d in docs:
        assert d["metadata"].get("namespace"), f"{d['kind']} {d['metadata']['name']}"


def test_full_values_render_every_optional_object():
    kinds = sorted(d["kind"] for d in helm_template(FULL))
    assert kinds == sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
                            "Secret", "Service", "Service", "ServiceAccount", "ServiceMonitor",
                            "TriggerAuthentication"])
    default = sorted(d["kind"] for d in helm_template())
    assert default == sorted(["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret",
                              "Service", "Service", "ServiceAccount"])


def test_servicemonitor_validation_catches_a_typo():
    sm = one(helm_template(FULL), "ServiceMonitor")
    sm["spec"]["endpoints"][0]["intervall"] = "30s"
    (r,) = kubecheck([sm])
    assert r["result"] == "invalid" and "intervall" in " ".join(r["errors"])


# ---------------------------------------------------------------- the same as Kustomize

def essentials(deployment):
    c = container(deployment)
    spec = pod_spec(deployment)
    return {
        "replicas": deployment["spec"]["replicas"],
        "strategy": deployment["spec"]["strategy"],
        "revisionHistoryLimit": deployment["spec"]["revisionHistoryLimit"],
        "image": c["image"],
        "command": c.get("command"),
        "args": c["args"],
        "env": c["env"],
        "ports": c["ports"],
        "readinessProbe": c["readinessProbe"],
        "livenessProbe": c["livenessProbe"],
        "resources": c["resources"],
        "securityContext": c["securityContext"],
        "volumeMounts": c["volumeMounts"],
        "podSecurityContext": spec["securityContext"],
        "serviceAccountName": spec["serviceAccountName"],
        "automountServiceAccountToken": spec["automountServiceAccountToken"],
        "terminationGracePeriodSeconds": spec["terminationGracePeriodSeconds"],
        "volumes": spec["volumes"],
    }


@pytest.mark.parametrize("entry,values", [("scaler", {"tls": {"enabled": False}}), ("", {"tls": {
    "triggerAuthentication": {"namespaces": ["data-load"]}}})],
                         ids=["no-tls", "default-tls"])
def test_chart_deployment_is_the_kustomize_deployment(entry, values):
    kustomized = one(kustomize_build(entry), "Deployment", SCALER)
    helmed = one(helm_template(values), "Deployment", SCALER)
    assert essentials(helmed) == essentials(kustomized)
    assert helmed["metadata"]["namespace"] == kustomized["metadata"]["namespace"]
    # The selector may carry more labels (the release's) but must select what Kustomize selects.
    assert (kustomized["spec"]["selector"]["matchLabels"].items()
            <= helmed["spec"]["selector"]["matchLabels"].items())


@pytest.mark.parametrize("name", [SCALER, SCALER + "-headless"])
def test_chart_services_are_the_kustomize_services(name):
    kustomized = one(kustomize_build("scaler"), "Service", name)
    helmed = one(helm_template(), "Service", name)
    for doc in (kustomized, helmed):
        doc["spec"].pop("selector")
    assert helmed["spec"] == kustomized["spec"]
    assert helmed["metadata"]["namespace"] == kustomized["metadata"]["namespace"]


def test_chart_pdb_serviceaccount_and_profiles_are_kustomizes():
    k, h = kustomize_build("scaler"), helm_template()
    assert one(h, "PodDisruptionBudget")["spec"]["minAvailable"] == one(
        k, "PodDisruptionBudget")["spec"]["minAvailable"]
    assert one(h, "ServiceAccount")["automountServiceAccountToken"] is False
    ks, hs = find(k, "Secret"), find(h, "Secret")
    assert sorted(s["metadata"]["name"] for s in hs) == sorted(s["metadata"]["name"] for s in ks)
    for secret in ks:
        assert one(hs, "Secret", secret["metadata"]["name"])["stringData"] == secret["stringData"]


def test_chart_triggerauthentication_is_the_default_deploys():
    k = one(kustomize_build(""), "TriggerAuthentication")
    h = one(helm_template(FULL), "TriggerAuthentication")
    assert (h["metadata"]["name"], h["metadata"]["namespace"]) == (
        k["metadata"]["name"], k["metadata"]["namespace"])
    assert h["spec"] == k["spec"]


# ---------------------------------------------------------------- values

def test_image_values():
    c = container(one(helm_template({"image": {"repository": "registry.example.com/klag-scaler",
                                               "tag": "9.9.9", "pullPolicy": "Always"}}),
                      "Deployment"))
    assert c["image"] == "registry.example.com/klag-scaler:9.9.9"
    assert c["imagePullPolicy"] == "Always"


def test_replicas_resources_and_extra_args():
    d = one(helm_template({"replicaCount": 3, "resources": {"limits": {"memory": "1Gi"}},
                           "extraArgs": ["--log-level=debug"]}), "Deployment")
    assert d["spec"]["replicas"] == 3
    assert container(d)["resources"]["limits"]["memory"] == "1Gi"
    assert container(d)["args"] == ["serve", "--log-level=debug"]


def test_metrics_port_is_configurable_and_can_be_turned_off():
    docs = helm_template({"metrics": {"port": 9100}, "serviceMonitor": {"enabled": True}})
    c = container(one(docs, "Deployment"))
    assert env_of(c)["KLAG_METRICS_LISTEN"]["value"] == "0.0.0.0:9100"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in c["ports"]
    svc = one(docs, "Service", SCALER)
    assert {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP",
            "appProtocol": "http"} in svc["spec"]["ports"]
    off = container(one(helm_template({"metrics": {"enabled": False}}), "Deployment"))
    assert env_of(off)["KLAG_METRICS_LISTEN"]["value"] == ""
    assert [p["name"] for p in off["ports"]] == ["grpc"]
    assert "needs metrics.enabled" in helm_template_error(
        {"metrics": {"enabled": False}, "serviceMonitor": {"enabled": True}})


def test_servicemonitor_scrapes_the_metrics_port_of_each_pod_once():
    docs = helm_template(FULL)
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    selected = [s for s in find(docs, "Service")
                if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    with_port = [s for s in selected if "metrics" in [p["name"] for p in s["spec"]["ports"]]]
    assert [s["metadata"]["name"] for s in with_port] == [SCALER]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert with_port[0]["spec"]["selector"].items() <= pod_labels.items()


def test_networkpolicy_admits_keda_to_grpc_and_prometheus_to_metrics():
    docs = helm_template(FULL)
    np = one(docs, "NetworkPolicy")
    deployment = one(docs, "Deployment")
    assert (np["spec"]["podSelector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items())
    assert np["spec"]["policyTypes"] == ["Ingress"]
    ports = {r["ports"][0]["port"]: r["from"] for r in np["spec"]["ingress"]}
    assert set(ports) == {p["name"] for p in container(deployment)["ports"]} == {"grpc", "metrics"}
    assert ports["grpc"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "keda"}


def test_protected_by_default_mutual_tls_and_networkpolicy():
    docs = helm_template()
    c = container(one(docs, "Deployment"))
    env = {e["name"]: e.get("value") for e in c["env"]}
    for var in ("KLAG_TLS_CERT", "KLAG_TLS_KEY", "KLAG_TLS_CLIENT_CA"):
        assert env[var].startswith("/etc/klag/tls/"), var
    # The chart's policy is the Kustomize component's (the chart's selector may add labels).
    h, k = one(docs, "NetworkPolicy"), one(kustomize_build(""), "NetworkPolicy")
    assert (h["metadata"]["name"], h["metadata"]["namespace"]) == (
        k["metadata"]["name"], k["metadata"]["namespace"])
    assert h["spec"]["ingress"] == k["spec"]["ingress"]
    assert h["spec"]["policyTypes"] == k["spec"]["policyTypes"]
    assert (k["spec"]["podSelector"]["matchLabels"].items()
            <= h["spec"]["podSelector"]["matchLabels"].items())
    off = helm_template({"tls": {"enabled": False}, "networkPolicy": {"enabled": False}})
    assert not find(off, "NetworkPolicy")
    assert "KLAG_TLS_CERT" not in {e["name"] for e in container(one(off, "Deployment"))["env"]}


def test_pdb_can_be_turned_off_and_tuned():
    assert not find(helm_template({"podDisruptionBudget": {"enabled": False}}),
                    "PodDisruptionBudget")
    pdb = one(helm_template({"podDisruptionBudget": {"minAvailable": 2}, "replicaCount": 3}),
              "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2


def test_profiles_from_values_and_existing_secrets():
    # Helm merges maps with the defaults: null removes the default profile `kafka`.
    docs = helm_template({"tls": {"enabled": False}, "profiles": {
        "kafka": None,
        "prod": {"data": {"allowedNamespaces": "a,b", "bootstrapServers": "k:9093",
                          "sasl": "scram_sha512", "username": "u", "password": "p"}},
        "shared": {"existingSecret": "my-profile"}}})
    d = one(docs, "Deployment")
    mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
    assert mounts == {"profile-prod": "/etc/klag/profiles/prod",
                      "profile-shared": "/etc/klag/profiles/shared"}
    volumes = {v["name"]: v["secret"]["secretName"] for v in pod_spec(d)["volumes"]}
    assert volumes == {"profile-prod": "klag-scaler-profile-prod", "profile-shared": "my-profile"}
    assert [s["metadata"]["name"] for s in find(docs, "Secret")] == ["klag-scaler-profile-prod"]
    assert one(docs, "Secret")["stringData"]["allowedNamespaces"] == "a,b"
    assert "allowedNamespaces is required" in helm_template_error(
        {"profiles": {"x": {"data": {"bootstrapServers": "k:9092"}}}})
    assert "lower-case" in helm_template_error(
        {"profiles": {"Bad_Name": {"data": {"allowedNamespaces": "*"}}}})


def test_no_profiles_and_no_tls_renders_without_volumes():
    d = one(helm_template({"profiles": None, "tls": {"enabled": False}}), "Deployment")
    assert "volumes" not in pod_spec(d) and "volumeMounts" not in container(d)
    assert validation_errors([d]) == []


def test_tls_server_name_follows_the_release_and_namespace():
    docs = helm_template({"tls": {"enabled": True}}, "--namespace", "scalers")
    c = container(one(docs, "Deployment"))
    args = c["readinessProbe"]["exec"]["command"]
    assert args[args.index("--tls-server-name") + 1] == \
        "klag-scaler-headless.scalers.svc.cluster.local"
    assert not find(docs, "TriggerAuthentication")


# ---------------------------------------------------------------- dashboard

def test_dashboard_uses_only_the_scalers_metrics():
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]
              if isinstance(v.get("query"), dict)]
    used = {m for e in exprs for m in re.findall(r"\bklag_[a-z0-9_]+", e)}
    assert used, "the dashboard queries no klag metric"
    known = scaler_metric_names()
    assert used <= known, f"not exported by klag-scaler: {sorted(used - known)}"
    for base in ("klag_scaler_rpcs_total", "klag_scaler_rpc_duration_seconds_bucket",
                 "klag_trigger_lag_records", "klag_partition_lag_records", "klag_build_info",
                 "klag_trigger_active", "klag_trigger_metric_value"):
        assert base in used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_configmap_ships_the_file_with_the_sidecar_label():
    cm = one(helm_template({"dashboard": {"enabled": True}}), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    with open(DASHBOARD, encoding="utf-8") as f:
        assert json.loads(cm["data"]["klag.json"]) == json.load(f)

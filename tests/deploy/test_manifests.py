"""deploy/ (Kustomize): every entry point renders with the real `kustomize build`, every object
validates (Kubernetes' schema through kubecheck, KEDA's CRD schemas), and the pieces are wired to
each other and to the images (Dockerfile.*). The Helm chart: test_helm.py.

Run: scripts/tools.sh && python3 -m pytest tests/deploy (ctest: deploy_manifests_test, labels
unit;python). The
metadata keys and the scaler's default port are checked against the real C++ parser and server
options by deploy_metadata_test (tests/deploy/deploy_metadata_test.cc).
"""
import copy
import glob
import json
import os
import re
import shlex

import pytest
import yaml

from deploy_tools import (DEPLOY, HERE, ROOT, SCALEDJOB_SCHEMA, TRIGGERAUTH_SCHEMA, crd_errors,
                          find, kubecheck, kustomize_build, one, validation_errors)

# Every kustomization a user applies (docs/deploy.md).
ENTRY_POINTS = ["", "scaler", "jobs", "overlays/no-tls", "examples/scaledobject"]

SCALER_NAMESPACE = "klag"
SCALER_NAME = "klag-scaler"


# ---------------------------------------------------------------- helpers

def render(entry):
    return kustomize_build(entry)


# Kinds without a namespace among those deploy/ uses.
CLUSTER_SCOPED = {"Namespace"}


def pod_spec(doc):
    if doc["kind"] == "ScaledJob":
        return doc["spec"]["jobTargetRef"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc):
    if doc["kind"] == "ScaledJob":
        return doc["spec"]["jobTargetRef"]["template"]["metadata"]["labels"]
    return doc["spec"]["template"]["metadata"]["labels"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


class Dockerfile:
    """The facts of a Dockerfile.* the manifests depend on."""

    def __init__(self, path):
        text = read(path)
        # Join continuation lines, drop comments.
        lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
        self.logical = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
        self.stages = [l for l in self.logical if l.startswith("FROM ")]
        self.labels = dict(re.findall(r'([\w.]+)="([^"]*)"', " ".join(
            l for l in self.logical if l.startswith("LABEL "))))
        (entry,) = [l for l in self.logical if l.startswith("ENTRYPOINT ")]
        self.entrypoint = json.loads(entry[len("ENTRYPOINT "):])
        self.expose = [int(p) for l in self.logical if l.startswith("EXPOSE ")
                       for p in l.split()[1:]]
        (user,) = [l for l in self.logical if l.startswith("USER ")]
        self.uid, self.gid = (int(x) for x in user.split()[1].split(":"))
        self.copied = [w for l in self.logical if l.startswith("COPY --from=")
                       for w in l.split()[2:]]
        runs = self._runs_by_stage()
        (build,) = [i for i, l in enumerate(self.stages) if l.endswith(" AS build")]
        # Debian packages by name, and .deb files installed by path (librdkafka's, from the
        # image's own `librdkafka` stage).
        self.build_packages = [p for p in apt_packages(runs[build]) if not p.endswith(".deb")]
        self.build_debs = [p for p in apt_packages(runs[build]) if p.endswith(".deb")]
        self.runtime_packages = [p for p in apt_packages(runs[-1]) if not p.endswith(".deb")]
        self.runtime_debs = [p for p in apt_packages(runs[-1]) if p.endswith(".deb")]

    def _runs_by_stage(self):
        stages, current = [], None
        for l in self.logical:
            if l.startswith("FROM "):
                current = []
                stages.append(current)
            elif l.startswith("RUN ") and current is not None:
                current.append(l[4:])
        return stages

    def image(self):
        return f"{self.labels['org.opencontainers.image.title']}:" \
               f"{self.labels['org.opencontainers.image.version']}"


def apt_packages(runs):
    out = []
    for run in runs:
        for command in run.split("&&"):
            words = shlex.split(command)
            if "apt-get" in words and "install" in words:
                out += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return out


def project_version():
    m = re.search(r"project\(klag VERSION ([0-9.]+)", read("CMakeLists.txt"))
    return m.group(1)


def install_deps_packages():
    text = read("scripts/install-deps.sh")
    body = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M).group(1)
    words = []
    for line in body.splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


SCALER_DOCKERFILE = Dockerfile("Dockerfile.scaler")
JOB_DOCKERFILE = Dockerfile("Dockerfile.job")


# ---------------------------------------------------------------- parsing and rendering

def all_yaml_files():
    """Every manifest file of the Kustomize tree (the chart's templates are not YAML)."""
    return sorted(p for p in glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True)
                  if not p.startswith(os.path.join(DEPLOY, "helm") + os.sep))


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def files_of(directory):
    """Every file a kustomization (and its components) lists, recursively, as real paths."""
    (k,) = load_documents(os.path.join(directory, "kustomization.yaml"))
    out = {os.path.realpath(os.path.join(directory, "kustomization.yaml"))}
    for entry in k.get("resources", []) + k.get("components", []):
        path = os.path.join(directory, entry)
        out |= files_of(path) if os.path.isdir(path) else {os.path.realpath(path)}
    return out


def test_every_manifest_parses_and_names_its_object():
    files = all_yaml_files()
    assert len(files) >= 15
    for path in files:
        docs = load_documents(path)
        assert docs, f"{path} is empty"
        for d in docs:
            assert d.get("apiVersion") and d.get("kind"), path
            if os.path.basename(path) != "kustomization.yaml":
                assert d.get("metadata", {}).get("name"), path


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_kustomization_renders_with_kustomize(entry):
    docs = render(entry)
    assert docs
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"].get("namespace"), f"{d['kind']} {d['metadata']['name']}"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_object_validates_against_the_kubernetes_and_keda_schemas(entry):
    docs = render(entry)
    assert validation_errors(docs) == []
    checked = {r["kind"] for r in kubecheck(docs) if r["result"] == "valid"}
    assert checked, "kubecheck validated nothing"


def test_kubernetes_validation_catches_unknown_fields_and_wrong_types():
    deployment = one(render("scaler"), "Deployment", SCALER_NAME)
    container = pod_spec(deployment)["containers"][0]
    container["readinessProbe"]["periodSecond"] = 5
    container["securityContext"]["readOnlyRootFilesystm"] = True
    deployment["spec"]["replicas"] = "2"
    errors = " ".join(validation_errors([deployment]))
    for needle in ("periodSecond", "readOnlyRootFilesystm", "replicas"):
        assert needle in errors


def test_every_file_in_deploy_is_used_by_a_kustomization():
    used = set()
    for entry in ENTRY_POINTS:
        used |= files_of(os.path.join(DEPLOY, entry))
    orphans = [p for p in all_yaml_files() if os.path.realpath(p) not in used]
    assert not orphans


# ---------------------------------------------------------------- KEDA CRDs

@pytest.mark.parametrize("entry", ["", "jobs", "overlays/no-tls"])
def test_scaledjob_validates_against_keda_crd(entry):
    for sj in find(render(entry), "ScaledJob"):
        assert crd_errors(SCALEDJOB_SCHEMA, sj) == []


def test_crd_validation_catches_typos_bad_enums_and_missing_fields():
    sj = one(render("jobs"), "ScaledJob")
    typo = copy.deepcopy(sj)
    typo["spec"]["pollingIntervall"] = 30
    assert any("pollingIntervall" in e for e in crd_errors(SCALEDJOB_SCHEMA, typo))
    enum = copy.deepcopy(sj)
    enum["spec"]["scalingStrategy"]["multipleScalersCalculation"] = "maximum"
    assert crd_errors(SCALEDJOB_SCHEMA, enum)
    nested = copy.deepcopy(sj)
    pod_spec(nested)["containers"][0]["securityContext"]["readOnlyRootFilesystm"] = True
    assert crd_errors(SCALEDJOB_SCHEMA, nested)
    missing = copy.deepcopy(sj)
    del missing["spec"]["triggers"][0]["metadata"]
    assert crd_errors(SCALEDJOB_SCHEMA, missing)
    number = copy.deepcopy(sj)
    number["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1  # must be a string
    assert crd_errors(SCALEDJOB_SCHEMA, number)


def test_triggerauthentication_validates_against_keda_crd():
    tas = find(render(""), "TriggerAuthentication")
    assert len(tas) == 1
    assert crd_errors(TRIGGERAUTH_SCHEMA, tas[0]) == []
    bad = copy.deepcopy(tas[0])
    del bad["spec"]["secretTargetRef"][0]["key"]
    bad["spec"]["secretTargetRefs"] = []
    errors = crd_errors(TRIGGERAUTH_SCHEMA, bad)
    assert any("'key' is a required property" in e for e in errors)
    assert any("secretTargetRefs" in e for e in errors)


def test_scaledjob_triggers_follow_kedas_external_rules():
    for entry in ["", "jobs", "overlays/no-tls"]:
        for sj in find(render(entry), "ScaledJob"):
            for trigger in sj["spec"]["triggers"]:
                # KEDA's webhook rejects metricType on ScaledJob triggers.
                assert "metricType" not in trigger
                assert trigger["type"] == "external"
                assert trigger["metadata"]["scalerAddress"]
                assert all(isinstance(v, str) for v in trigger["metadata"].values())


def test_scaledobject_example_triggers_have_the_crd_trigger_shape():
    trigger_schema = SCALEDJOB_SCHEMA["properties"]["spec"]["properties"]["triggers"]
    so = one(render("examples/scaledobject"), "ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert crd_errors(trigger_schema, so["spec"]["triggers"]) == []
    target = so["spec"]["scaleTargetRef"]["name"]
    one(render("examples/scaledobject"), "Deployment", target)
    assert so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]


# ---------------------------------------------------------------- the seed's ScaledJob

def test_scaledjob_is_the_seeds_field_for_field():
    sj = one(render("jobs"), "ScaledJob")
    spec = sj["spec"]
    job = spec["jobTargetRef"]
    assert (job["parallelism"], job["completions"]) == (1, 1)
    assert job["activeDeadlineSeconds"] == 600
    assert job["backoffLimit"] == 6
    assert spec["pollingInterval"] == 30
    assert spec["successfulJobsHistoryLimit"] == 5
    assert spec["failedJobsHistoryLimit"] == 5
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 1)
    assert spec["rollout"] == {"strategy": "gradual", "propagationPolicy": "foreground"}
    assert spec["scalingStrategy"]["multipleScalersCalculation"] == "max"
    assert spec["scalingStrategy"]["pendingPodConditions"]
    (trigger,) = spec["triggers"]
    md = trigger["metadata"]
    assert md["consumerGroup"] == "python_data_load"
    assert md["topic"] == "ListedStockPrice"
    assert md["lagThreshold"] == "1"
    assert md["offsetResetPolicy"] == "latest"
    assert md["bootstrapServers"]


# ---------------------------------------------------------------- wiring

def test_images_are_the_ones_the_dockerfiles_build():
    version = project_version()
    for dockerfile in (SCALER_DOCKERFILE, JOB_DOCKERFILE):
        assert dockerfile.labels["org.opencontainers.image.version"] == version
    docs = render("")
    scaler = one(docs, "Deployment", SCALER_NAME)
    assert pod_spec(scaler)["containers"][0]["image"] == SCALER_DOCKERFILE.image()
    sj = one(docs, "ScaledJob")
    assert pod_spec(sj)["containers"][0]["image"] == JOB_DOCKERFILE.image()


def test_commands_exist_in_the_images():
    def installed(dockerfile, path):
        return path in dockerfile.entrypoint or any(
            path == "/usr/local/bin/" + os.path.basename(src.lstrip("/"))
            for src in dockerfile.copied if not src.endswith(("/", ".deb")))

    sj = one(render("jobs"), "ScaledJob")
    command = pod_spec(sj)["containers"][0]["command"]
    assert command == JOB_DOCKERFILE.entrypoint
    scaler_tls = one(render(""), "Deployment", SCALER_NAME)
    container = pod_spec(scaler_tls)["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert installed(SCALER_DOCKERFILE, container[probe]["exec"]["command"][0])


def scaler_port(deployment, name="grpc"):
    container = pod_spec(deployment)["containers"][0]
    (port,) = [p for p in container["ports"] if p["name"] == name]
    return port


def test_ports_agree_between_listen_address_container_probes_image_and_services():
    docs = render("scaler")
    deployment = one(docs, "Deployment", SCALER_NAME)
    container = pod_spec(deployment)["containers"][0]
    port = scaler_port(deployment)
    assert container["ports"][0] == port, "grpc first (deploy_metadata_test reads ports[0])"
    metrics = scaler_port(deployment, "metrics")
    env = env_of(container)
    for var, p in (("KLAG_LISTEN", port), ("KLAG_METRICS_LISTEN", metrics)):
        listen = env[var]["value"]
        assert listen.startswith("0.0.0.0:"), f"{var}: must listen on every interface of the pod"
        assert int(listen.rsplit(":", 1)[1]) == p["containerPort"], var
    assert sorted(SCALER_DOCKERFILE.expose) == sorted([port["containerPort"], metrics["containerPort"]])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": port["containerPort"]}
    by_name = {p["name"]: p for p in container["ports"]}
    for svc in find(docs, "Service"):
        assert svc["spec"]["ports"][0]["name"] == "grpc"
        for sp in svc["spec"]["ports"]:
            cp = by_name[sp["name"]]
            assert sp["targetPort"] in (cp["name"], cp["containerPort"])
            assert sp["port"] == cp["containerPort"]
        assert svc["spec"]["selector"].items() <= pod_labels(deployment).items()
    # Prometheus scrapes the ClusterIP Service's endpoints; the headless one has only grpc.
    assert [p["name"] for p in one(docs, "Service", SCALER_NAME)["spec"]["ports"]] == [
        "grpc", "metrics"]
    assert [p["name"] for p in one(docs, "Service", SCALER_NAME + "-headless")["spec"][
        "ports"]] == ["grpc"]


def test_scaler_address_resolves_to_the_headless_scaler_service():
    docs = render("")
    deployment = one(docs, "Deployment", SCALER_NAME)
    sj = one(docs, "ScaledJob")
    so = one(render("examples/scaledobject"), "ScaledObject")
    for trigger in sj["spec"]["triggers"] + so["spec"]["triggers"]:
        host, port = trigger["metadata"]["scalerAddress"].rsplit(":", 1)
        m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", host)
        assert m, f"{host}: use the Service's full DNS name"
        svc = one(find(docs, "Service"), "Service", m.group(1))
        assert svc["metadata"]["namespace"] == m.group(2)
        # Headless: DNS returns every pod and KEDA balances round-robin over them.
        assert svc["spec"].get("clusterIP") == "None"
        assert svc["spec"]["selector"].items() <= pod_labels(deployment).items()
        assert int(port) in [p["port"] for p in svc["spec"]["ports"]]
        assert int(port) == scaler_port(deployment)["containerPort"]


def test_scaler_deployment_is_hardened_and_highly_available():
    docs = render("scaler")
    deployment = one(docs, "Deployment", SCALER_NAME)
    assert deployment["spec"]["replicas"] == 2
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(deployment).items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


@pytest.mark.parametrize("entry,kind,dockerfile", [
    ("scaler", "Deployment", SCALER_DOCKERFILE),
    ("jobs", "ScaledJob", JOB_DOCKERFILE),
    ("examples/scaledobject", "Deployment", None),
])
def test_pods_run_as_non_root_read_only_without_capabilities(entry, kind, dockerfile):
    doc = one(render(entry), kind)
    spec = pod_spec(doc)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    if dockerfile is not None:
        assert spec["securityContext"]["runAsUser"] == dockerfile.uid
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        for what in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][what])


def test_trigger_and_job_read_the_same_kafka_settings():
    docs = render("jobs")
    sj = one(docs, "ScaledJob")
    md = sj["spec"]["triggers"][0]["metadata"]
    container = pod_spec(sj)["containers"][0]
    env = env_of(container)
    same = {"bootstrapServers": "KLAG_BOOTSTRAP_SERVERS", "consumerGroup": "KLAG_GROUP",
            "topic": "KLAG_TOPIC", "offsetResetPolicy": "KLAG_OFFSET_RESET"}
    for key, var in same.items():
        assert md[key] == env[var]["value"], f"{key} vs {var}"


def test_from_env_keys_and_secret_refs_resolve():
    """KEDA resolves `<key>FromEnv: VAR` from the first container's env; each secretKeyRef must
    name a Secret of the same namespace that has the key (unless optional)."""
    docs = render("")
    sj = one(docs, "ScaledJob")
    container = pod_spec(sj)["containers"][0]
    env = env_of(container)
    from_env = {k: v for k, v in sj["spec"]["triggers"][0]["metadata"].items()
                if k.endswith("FromEnv")}
    assert from_env, "credentials reach the scaler through ...FromEnv keys"
    for key, var in from_env.items():
        assert var in env, f"{key}: {var} is not in the Job template's env"
    ns = sj["metadata"]["namespace"]
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if not ref:
            continue
        secrets = [s for s in find(docs, "Secret", ref["name"]) if s["metadata"]["namespace"] == ns]
        assert len(secrets) == 1, f"{e['name']}: no Secret {ref['name']} in {ns}"
        data = secrets[0].get("stringData", {}) | secrets[0].get("data", {})
        assert ref.get("optional") or ref["key"] in data, f"{e['name']}: no key {ref['key']}"


def test_profiles_secret_is_mounted_where_the_scaler_reads_profiles():
    docs = render("scaler")
    deployment = one(docs, "Deployment", SCALER_NAME)
    spec = pod_spec(deployment)
    container = spec["containers"][0]
    profiles_dir = env_of(container)["KLAG_PROFILES_DIR"]["value"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret and secret["secretName"].startswith("klag-scaler-profile-"):
            profile = secret["secretName"][len("klag-scaler-profile-"):]
            assert mount["mountPath"] == f"{profiles_dir}/{profile}"
            one(docs, "Secret", secret["secretName"])
    so = one(render("examples/scaledobject"), "ScaledObject")
    profile = so["spec"]["triggers"][0]["metadata"]["authProfile"]
    one(docs, "Secret", f"klag-scaler-profile-{profile}")


# Connection keys a trigger using a profile may not set (kafka::ConnectionSettingKeys()).
CONNECTION_KEYS = {"bootstrapServers", "tls", "ca", "cert", "key", "keyPassword", "unsafeSsl",
                   "sasl", "username", "password", "saslTokenProvider", "oauthTokenEndpointUri",
                   "scopes", "oauthExtensions", "kerberosServiceName", "keytab", "realm"}


def test_profiles_name_their_namespaces_and_pin_their_cluster():
    """Each profile Secret has allowedNamespaces and bootstrapServers (docs/security.md); the
    example that uses a profile is in an allowed namespace and sets no connection key."""
    docs = render("scaler")
    profiles = [d for d in docs if d["kind"] == "Secret"
                and d["metadata"]["name"].startswith("klag-scaler-profile-")]
    assert profiles
    for secret in profiles:
        data = secret["stringData"]
        assert data.get("allowedNamespaces", "").strip(), secret["metadata"]["name"]
        assert data.get("bootstrapServers", "").strip(), secret["metadata"]["name"]
    so = one(render("examples/scaledobject"), "ScaledObject")
    md = so["spec"]["triggers"][0]["metadata"]
    secret = one(docs, "Secret", f"klag-scaler-profile-{md['authProfile']}")
    allowed = [n.strip() for n in secret["stringData"]["allowedNamespaces"].split(",")]
    assert "*" in allowed or so["metadata"]["namespace"] in allowed
    for key in md:
        base = key[:-len("FromEnv")] if key.endswith("FromEnv") else key
        assert base not in CONNECTION_KEYS, key


def test_default_wires_keda_and_the_scaler_to_the_same_certificates():
    docs = render("")
    sj = one(docs, "ScaledJob")
    ta = one(docs, "TriggerAuthentication")
    assert ta["metadata"]["namespace"] == sj["metadata"]["namespace"]
    (trigger,) = sj["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == ta["metadata"]["name"]
    params = {r["parameter"] for r in ta["spec"]["secretTargetRef"]}
    assert params == {"caCert", "tlsClientCert", "tlsClientKey"}
    deployment = one(docs, "Deployment", SCALER_NAME)
    container = pod_spec(deployment)["containers"][0]
    env = env_of(container)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for var in ("KLAG_TLS_CERT", "KLAG_TLS_KEY", "KLAG_TLS_CLIENT_CA"):
        assert os.path.dirname(env[var]["value"]) in mounts
    host = trigger["metadata"]["scalerAddress"].rsplit(":", 1)[0]
    port = scaler_port(deployment)["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):
        args = container[probe]["exec"]["command"]
        assert args[args.index("--address") + 1] == f"127.0.0.1:{port}"
        assert args[args.index("--tls-server-name") + 1] == host
        for flag, var in (("--tls-cert", "KLAG_TLS_CERT"), ("--tls-key", "KLAG_TLS_KEY")):
            assert args[args.index(flag) + 1] == env[var]["value"]


# ---------------------------------------------------------------- images

def test_dockerfiles_are_multi_stage_bookworm_with_a_slim_non_root_runtime():
    for d in (SCALER_DOCKERFILE, JOB_DOCKERFILE):
        assert d.stages[0] == "FROM debian:bookworm AS librdkafka"
        assert d.stages[1] == "FROM debian:bookworm AS build"
        assert d.stages[-1].startswith("FROM debian:bookworm-slim AS runtime")
        assert d.uid != 0 and d.gid != 0
        assert d.entrypoint[0].startswith("/usr/local/bin/")
        assert not any("-dev" in p for p in d.runtime_packages)


def test_images_build_and_ship_the_projects_librdkafka():
    """Debian 12's librdkafka (2.0.2) is too old: the images build with and ship the .debs that
    scripts/librdkafka.sh builds (the same script as CI's), never Debian 12's package."""
    text = " ".join(SCALER_DOCKERFILE.logical)
    assert "scripts/librdkafka.sh build" in text
    for d in (SCALER_DOCKERFILE, JOB_DOCKERFILE):
        assert sorted(os.path.basename(p).split("_")[0] for p in d.build_debs) == [
            "librdkafka++1", "librdkafka-dev", "librdkafka1"]
        assert [os.path.basename(p).split("_")[0] for p in d.runtime_debs] == ["librdkafka1"]
        assert not any(p.startswith("librdkafka") for p in d.build_packages + d.runtime_packages)
    assert "librdkafka-dev" not in install_deps_packages()


def test_builder_packages_are_the_projects_build_packages():
    """The images build with what the project builds with here (scripts/install-deps.sh)."""
    known = install_deps_packages()
    for d in (SCALER_DOCKERFILE, JOB_DOCKERFILE):
        missing = sorted(set(d.build_packages) - known)
        assert not missing, f"not in scripts/install-deps.sh: {missing}"
    assert SCALER_DOCKERFILE.build_packages == JOB_DOCKERFILE.build_packages


def test_builder_has_every_library_the_project_builds_with():
    """A -dev package added to scripts/install-deps.sh (a new library) must reach the builder
    too, or the image build fails where CI passed. Not needed there: benchmarks (off by default)
    and the sanitizer runtime."""
    not_for_images = {"libbenchmark-dev", "libclang-rt-14-dev"}
    wanted = {p for p in install_deps_packages() if p.endswith("-dev")} - not_for_images
    for d in (SCALER_DOCKERFILE, JOB_DOCKERFILE):
        missing = sorted(wanted - set(d.build_packages))
        assert not missing, f"scripts/install-deps.sh builds with {missing}; the builder does not"


def test_dockerignore_keeps_build_trees_and_caches_out_of_the_context():
    patterns = [l.strip() for l in read(".dockerignore").splitlines()
                if l.strip() and not l.startswith("#")]
    for p in (".git", ".cache", "build*", "out"):
        assert p in patterns


# ---------------------------------------------------------------- protected by default


def test_default_deploy_serves_grpc_only_over_mutual_tls():
    container = pod_spec(one(render(""), "Deployment", SCALER_NAME))["containers"][0]
    env = env_of(container)
    for var in ("KLAG_TLS_CERT", "KLAG_TLS_KEY", "KLAG_TLS_CLIENT_CA"):
        assert env[var]["value"].startswith("/etc/klag/tls/"), var
    # Plaintext only where asked for by name.
    plain = pod_spec(one(render("overlays/no-tls"), "Deployment", SCALER_NAME))["containers"][0]
    assert not {"KLAG_TLS_CERT", "KLAG_TLS_KEY", "KLAG_TLS_CLIENT_CA"} & set(env_of(plain))


@pytest.mark.parametrize("entry", ["", "overlays/no-tls"])
def test_networkpolicy_admits_only_kedas_namespace_to_grpc(entry):
    docs = render(entry)
    deployment = one(docs, "Deployment", SCALER_NAME)
    (policy,) = find(docs, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items(), "the policy must select the scaler's pods"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    container_ports = {p["name"] for p in pod_spec(deployment)["containers"][0]["ports"]}
    assert set(by_port) == {"grpc", "metrics"} and set(by_port) <= container_ports
    assert by_port["grpc"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "keda"}}}]
    # No rule without a source: an empty `from` would admit every pod.
    assert all(rule.get("from") for rule in policy["spec"]["ingress"])

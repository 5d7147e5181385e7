"""The real tools the deploy tests render and validate with, and KEDA's CRD schemas.

    docs = kustomize_build("overlays/no-tls")       # `kustomize build deploy/overlays/no-tls`
    docs = helm_template({"tls": {"enabled": True}}) # `helm template klag deploy/helm/klag -n klag`
    results = kubecheck(docs)                        # one dict per object: result, errors

helm, kustomize and kubecheck are the binaries scripts/tools.sh builds (pinned versions, from
their Go modules). A missing binary fails the test that needs it with the command that builds it;
nothing is skipped.
"""
import copy
import functools
import json
import os
import subprocess

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
CHART = os.path.join(DEPLOY, "helm", "klag")
TOOLS_SH = os.path.join(ROOT, "scripts", "tools.sh")
RELEASE, RELEASE_NAMESPACE = "klag", "klag"
# KEDA's kinds: validated against the vendored CRD schemas (schema/), not by kubecheck.
KEDA_KINDS = {"ScaledJob", "ScaledObject", "TriggerAuthentication"}


class ToolMissing(AssertionError):
    pass


@functools.lru_cache(maxsize=None)
def tool(name):
    """Path of a tool scripts/tools.sh built; fails (does not skip) when it is not there."""
    proc = subprocess.run([TOOLS_SH, "path", name], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolMissing(f"{name} is missing: {proc.stderr.strip()}")
    return proc.stdout.strip()


def run(args, stdin=None):
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def load_all(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


@functools.lru_cache(maxsize=None)
def _kustomize_build(entry):
    return run([tool("kustomize"), "build", os.path.join(DEPLOY, entry)])


def kustomize_build(entry):
    return load_all(_kustomize_build(entry))


@functools.lru_cache(maxsize=None)
def _helm_template(values_json, extra):
    args = [tool("helm"), "template", RELEASE, CHART, "--namespace", RELEASE_NAMESPACE]
    if values_json != "null":
        args += ["--values", "-"]
    return run(args + list(extra), stdin=values_json if values_json != "null" else None)


def helm_template(values=None, *extra):
    """Objects `helm template` renders with VALUES (a dict, given as a values file)."""
    return load_all(_helm_template(json.dumps(values, sort_keys=True), extra))


def helm_template_error(values):
    """The error text of a `helm template` that must fail."""
    proc = subprocess.run([tool("helm"), "template", RELEASE, CHART, "--values", "-"],
                          input=json.dumps(values), capture_output=True, text=True)
    assert proc.returncode != 0, "helm template succeeded"
    return proc.stderr


def kubecheck(docs):
    """kubecheck's verdict on each object (in order): {kind, name, result, errors}."""
    proc = subprocess.run([tool("kubecheck"), "-"], input=yaml.safe_dump_all(docs),
                          capture_output=True, text=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode in (0, 1) and len(results) == len(docs), proc.stderr
    assert (proc.returncode == 1) == any(r["result"] == "invalid" for r in results), proc.stderr
    return results


def find(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs, kind, name=None):
    hits = find(docs, kind, name)
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return copy.deepcopy(hits[0])


# ---------------------------------------------------------------- KEDA CRD schemas

def load_schema(name):
    with open(os.path.join(HERE, "schema", name), encoding="utf-8") as f:
        return to_json_schema(json.load(f)["schema"])


def to_json_schema(node):
    """Kubernetes structural schema -> JSON Schema with the API server's strict field
    validation: objects with `properties` reject other fields unless they preserve unknown
    fields; int-or-string takes either."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (node.get("type") == "object" and "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node):
        out["additionalProperties"] = False
    return out


SCALEDJOB_SCHEMA = load_schema("scaledjob-v1alpha1.json")
TRIGGERAUTH_SCHEMA = load_schema("triggerauthentication-v1alpha1.json")


def crd_errors(schema, doc):
    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
                  for e in validator.iter_errors(doc))


def keda_errors(doc):
    """Errors of a KEDA object against its CRD schema (ScaledObject: its triggers, with the
    trigger schema the ScaledJob CRD shares)."""
    if doc["kind"] == "ScaledJob":
        return crd_errors(SCALEDJOB_SCHEMA, doc)
    if doc["kind"] == "TriggerAuthentication":
        return crd_errors(TRIGGERAUTH_SCHEMA, doc)
    if doc["kind"] == "ScaledObject":
        trigger_schema = SCALEDJOB_SCHEMA["properties"]["spec"]["properties"]["triggers"]
        return crd_errors(trigger_schema, doc["spec"]["triggers"])
    raise AssertionError(f"no KEDA schema for {doc['kind']}")


def validation_errors(docs):
    """Every object validated: built-in kinds and ServiceMonitor by kubecheck, KEDA kinds by
    their CRD schemas; anything else is an error (an object nothing validated)."""
    errors = []
    for doc, r in zip(docs, kubecheck(docs)):
        what = f"{doc['kind']} {doc['metadata'].get('name')}"
        if r["result"] == "invalid":
            errors += [f"{what}: {e}" for e in r["errors"]]
        elif r["result"] == "unchecked":
            if doc["kind"] in KEDA_KINDS and doc["apiVersion"] == "keda.sh/v1alpha1":
                errors += [f"{what}: {e}" for e in keda_errors(doc)]
            else:
                errors.append(f"{what}: no schema validated it")
    return errors

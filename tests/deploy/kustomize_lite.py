"""A small kustomize renderer: exactly the features deploy/ uses, and an error for any other.

    docs = render("deploy/overlays/tls")   # list of dicts, like `kubectl kustomize`

Supported: `resources` (files and directories), `components` (kind Component), `namespace`,
`labels` (pairs, without selectors), `images` (name -> newName/newTag) and `patches` with a
`target` and an inline JSON 6902 `patch` (add, replace, remove). Order as in kustomize: a
directory's resources, then its components, then its own transformers. `kubectl kustomize`
renders deploy/ the same way (checked by hand; kubectl is not a Debian package, so the tests do
not need it).
"""
import copy
import os

import yaml

SUPPORTED_KEYS = {
    "apiVersion", "kind", "namespace", "labels", "resources", "components", "images", "patches"
}
# Kinds that have no namespace.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "ClusterTriggerAuthentication", "PriorityClass", "StorageClass"}
# Where kustomize's image transformer looks for container images.
POD_SPEC_PATHS = {
    "Deployment": ["spec", "template", "spec"],
    "StatefulSet": ["spec", "template", "spec"],
    "DaemonSet": ["spec", "template", "spec"],
    "Job": ["spec", "template", "spec"],
    "CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
    "ScaledJob": ["spec", "jobTargetRef", "template", "spec"],
    "Pod": ["spec"],
}


class KustomizeError(Exception):
    pass


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def read_kustomization(directory):
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(path):
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    (k,) = load_documents(path)
    unknown = set(k) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    return k


def files_of(directory):
    """Every file a kustomization (and its components) pulls in, recursively, as real paths."""
    k = read_kustomization(directory)
    out = {os.path.realpath(os.path.join(directory, "kustomization.yaml"))}
    for entry in k.get("resources", []) + k.get("components", []):
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            out |= files_of(path)
        else:
            out.add(os.path.realpath(path))
    return out


def render(directory, expect_kind="Kustomization"):
    k = read_kustomization(directory)
    if k.get("kind", "Kustomization") != expect_kind:
        raise KustomizeError(f"{directory}: kind {k.get('kind')}, expected {expect_kind}")
    docs = []
    for entry in k.get("resources", []):
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            docs += render(path)
        elif os.path.isfile(path):
            docs += load_documents(path)
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")
    for entry in k.get("components", []):
        docs = apply_component(os.path.join(directory, entry), docs)
    return transform(directory, k, docs)


def apply_component(directory, docs):
    k = read_kustomization(directory)
    if k.get("kind") != "Component":
        raise KustomizeError(f"{directory}: a component must have kind Component")
    added = []
    for entry in k.get("resources", []):
        added += load_documents(os.path.join(directory, entry))
    return transform(directory, k, docs + added)


def transform(directory, k, docs):
    docs = copy.deepcopy(docs)
    for patch in k.get("patches", []):
        apply_patch(directory, patch, docs)
    if "namespace" in k:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = k["namespace"]
    for label in k.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise KustomizeError(f"{directory}: labels with selectors/templates not implemented")
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in k.get("images", []):
        for d in docs:
            for container in containers_of(d):
                set_image(container, image)
    check_unique(directory, docs)
    return docs


def containers_of(doc):
    path = POD_SPEC_PATHS.get(doc.get("kind"))
    if path is None:
        return []
    spec = doc
    for key in path:
        spec = spec.get(key, {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def set_image(container, image):
    current = container.get("image", "")
    name, tag = current, None
    if "@" not in current and ":" in current.rsplit("/", 1)[-1]:
        name, tag = current.rsplit(":", 1)
    if name != image["name"]:
        return
    name = image.get("newName", name)
    tag = image.get("newTag", tag)
    container["image"] = f"{name}:{tag}" if tag else name


def check_unique(directory, docs):
    seen = set()
    for d in docs:
        key = (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: duplicate resource {key}")
        seen.add(key)


def matches(target, doc):
    api = doc.get("apiVersion", "")
    group, _, version = api.rpartition("/")
    checks = {
        "group": group,
        "version": version,
        "kind": doc.get("kind"),
        "name": doc["metadata"].get("name"),
        "namespace": doc["metadata"].get("namespace"),
    }
    for field, value in target.items():
        if field not in checks:
            raise KustomizeError(f"patch target field {field} not implemented")
        if checks[field] != value:
            return False
    return True


def apply_patch(directory, patch, docs):
    if set(patch) != {"target", "patch"}:
        raise KustomizeError(f"{directory}: only inline JSON 6902 patches with a target")
    ops = yaml.safe_load(patch["patch"])
    if not isinstance(ops, list):
        raise KustomizeError(f"{directory}: only JSON 6902 patches (a list of operations)")
    hits = [d for d in docs if matches(patch["target"], d)]
    if not hits:
        raise KustomizeError(f"{directory}: patch target {patch['target']} matches nothing")
    for doc in hits:
        for op in ops:
            apply_op(directory, doc, op)


def apply_op(directory, doc, op):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if kind == "add":
        if isinstance(parent, list):
            if last == "-":
                parent.append(copy.deepcopy(op["value"]))
            else:
                parent.insert(int(last), copy.deepcopy(op["value"]))
        else:
            parent[last] = copy.deepcopy(op["value"])
    elif kind == "replace":
        key = int(last) if isinstance(parent, list) else last
        if not isinstance(parent, list) and key not in parent:
            raise KustomizeError(f"{directory}: replace of missing {op['path']}")
        parent[key] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        raise KustomizeError(f"{directory}: JSON patch op {kind} not implemented")

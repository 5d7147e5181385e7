#!/usr/bin/env python3
"""Regenerates schema/scaledjob-v1alpha1.json from KEDA's ScaledJob CRD.

    tests/deploy/vendor_crd_schema.py ../shared/reference/keda.sh_scaledjobs.yaml

Keeps the v1alpha1 openAPIV3Schema (the validation data, Apache-2.0, see schema/README.md),
drops `description` texts, and records where it came from. The test turns the Kubernetes
extensions (x-kubernetes-int-or-string, preserve-unknown-fields) into JSON Schema itself.
"""
import json
import sys

import yaml


def strip_descriptions(node):
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = strip_descriptions(version["schema"]["openAPIV3Schema"])
    out = {
        "$comment": (
            "KEDA ScaledJob CRD (scaledjobs.keda.sh, v1alpha1) openAPIV3Schema from "
            "kedacore/keda v2.20.2 config/crd/bases/keda.sh_scaledjobs.yaml "
            f"(controller-gen {crd['metadata']['annotations']['controller-gen.kubebuilder.io/version']}), "
            "descriptions removed. Copyright The KEDA Authors, Apache License 2.0. "
            "Regenerate with tests/deploy/vendor_crd_schema.py."
        ),
        "schema": schema,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

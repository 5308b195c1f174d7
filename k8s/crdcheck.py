#!/usr/bin/env python3
"""Validates custom resources against the CRDs vendored in k8s/crds/, offline.

    crdcheck.py CRD_DIR FILE...

Every object whose API group is not a built-in Kubernetes group must have a
vendored CRD; it is validated against that CRD version's openAPIV3Schema the
way the API server treats it: wrong types, missing required fields and
values outside an enum are errors, and so are unknown fields (the API server
prunes them silently, kubeconform --strict rejects them), except where the
schema keeps unknown fields (x-kubernetes-preserve-unknown-fields) or maps
them (additionalProperties). Built-in kinds are left to kubernetes-validate.
Exits 1 with one line per error.
"""
import glob
import os
import sys

import jsonschema
import yaml

BUILTIN_GROUPS = {
    "", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
    "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io",
    "certificates.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
}


def strict(schema):
    """The CRD's structural schema as a JSON Schema that rejects unknown fields."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: strict(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = strict(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = strict(value)
        elif key.startswith("x-kubernetes-") or key in ("description", "format", "example"):
            continue
        else:
            out[key] = value
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


def load_crds(directory):
    schemas = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {})["metadata"] = METADATA
                key = (f'{spec["group"]}/{version["name"]}', spec["names"]["kind"])
                schemas[key] = (jsonschema.Draft7Validator(schema), os.path.basename(path))
    return schemas


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = load_crds(argv[1])
    errors, checked = [], 0
    for path in argv[2:]:
        for doc in yaml.safe_load_all(open(path)):
            if not doc:
                continue
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            group = api.split("/")[0] if "/" in api else ""
            name = (doc.get("metadata") or {}).get("name", "?")
            if group in BUILTIN_GROUPS:
                continue
            if (api, kind) not in schemas:
                errors.append(f"{path}: {kind}/{name}: no CRD vendored for {api} {kind}")
                continue
            validator, crd = schemas[(api, kind)]
            checked += 1
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                where = ".".join(str(p) for p in err.absolute_path) or "(root)"
                errors.append(f"{path}: {kind}/{name}: {where}: {err.message} ({crd})")
    for e in errors:
        print("ERROR", e)
    if errors:
        return 1
    print(f"   {checked} custom resources valid against their vendored CRDs (strict)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

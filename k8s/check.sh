#!/usr/bin/env bash
# Renders every overlay with `kubectl kustomize` and validates the output
# against the Kubernetes schemas, offline and strict (unknown fields are
# errors). Then checks that a broken manifest is still caught.
set -euo pipefail
cd "$(dirname "$0")"
VERSIONS=(${K8S_VERSIONS:-1.30.0 1.37.0})

command -v kubectl >/dev/null || { echo "k8s-check needs kubectl (for kubectl kustomize)" >&2; exit 1; }
command -v kubernetes-validate >/dev/null || pip install --quiet kubernetes-validate

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$out/$name.yaml"
  echo "== $name: $(grep -c '^kind:' "$out/$name.yaml") objects"
  grep '^kind:' "$out/$name.yaml" | sort | uniq -c
  for v in "${VERSIONS[@]}"; do
    kubernetes-validate --strict --quiet -k "$v" "$out/$name.yaml"
    echo "   valid against Kubernetes $v (strict)"
  done
done
# Custom resources (CloudNativePG) have no schema here: they are only parsed.
kubernetes-validate --quiet overlays/prod/cloudnative-pg/cluster.yaml >/dev/null || true

for broken in testdata/*.yaml; do
  if kubernetes-validate --strict --quiet "$broken" >/dev/null 2>&1; then
    echo "k8s-check: $broken passed validation: the check is not working" >&2
    exit 1
  fi
  echo "== $broken is rejected, as it must be"
done

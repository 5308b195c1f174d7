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

# The alerting rules, as Prometheus will load them from the PrometheusRule,
# and the dashboard's JSON.
PROMTOOL=${PROMTOOL:-promtool}
command -v "$PROMTOOL" >/dev/null || { echo "k8s-check needs promtool (make k8s-check installs it)" >&2; exit 1; }
python3 - overlays/prod/observability/rules.yaml "$out/rules.yaml" <<'PY'
import json, sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
assert rule["kind"] == "PrometheusRule", rule["kind"]
json.dump(rule["spec"], open(sys.argv[2], "w"))
PY
"$PROMTOOL" check rules "$out/rules.yaml"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"], "no panels"; print("== dashboard:", d["title"], len(d["panels"]), "panels")' \
  overlays/prod/observability/dashboard.json

for broken in testdata/*.yaml; do
  if kubernetes-validate --strict --quiet "$broken" >/dev/null 2>&1; then
    echo "k8s-check: $broken passed validation: the check is not working" >&2
    exit 1
  fi
  echo "== $broken is rejected, as it must be"
done

#!/usr/bin/env bash
# Renders every kustomization (the platform's namespaces, the overlays, their
# database and migration kustomizations, the Argo CD entry point) with
# `kubectl kustomize` and checks the output, offline:
#  - built-in kinds against the Kubernetes schemas, strict (unknown fields are
#    errors), for each version in K8S_VERSIONS;
#  - custom resources (CloudNativePG, Barman Cloud, Prometheus Operator,
#    cert-manager, Argo CD, Flux) against the CRDs vendored in crds/, strict;
#  - Tradewatch's own policy (policy.py) over each environment as deployed;
#  - checkov's Kubernetes checks over what production deploys;
#  - the alerting rules with promtool, the dashboard's JSON;
#  - that every manifest in testdata/ is rejected, for the reason it names.
set -euo pipefail
cd "$(dirname "$0")"
VERSIONS=(${K8S_VERSIONS:-1.30.0 1.37.0})

command -v kubectl >/dev/null || { echo "k8s-check needs kubectl (for kubectl kustomize)" >&2; exit 1; }
python3 -c 'import jsonschema, yaml' 2>/dev/null && command -v kubernetes-validate >/dev/null ||
  pip install --quiet kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Every kustomization but the components, by its path.
mapfile -t dirs < <(find platform overlays gitops -name kustomization.yaml -exec grep -L '^kind: Component' {} + | xargs -n1 dirname | sort)
rendered=()
for dir in "${dirs[@]}"; do
  file="$out/$(echo "$dir" | tr / -).yaml"
  kubectl kustomize "$dir" > "$file"
  rendered+=("$file")
  echo "== $dir: $(grep -c '^kind:' "$file") objects ($(grep '^kind:' "$file" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}'))"
done
gitops=(gitops/argocd/applications.yaml gitops/flux/kustomizations.yaml)

for v in "${VERSIONS[@]}"; do
  kubernetes-validate --strict --quiet -k "$v" "${rendered[@]}" "${gitops[@]}" 2>&1 | { grep -v "^WARN .*Couldn't find schema for kind" || true; }
  test "${PIPESTATUS[0]}" -eq 0
  echo "== valid against Kubernetes $v (strict): ${#rendered[@]} kustomizations"
done
python3 crdcheck.py crds "${rendered[@]}" "${gitops[@]}"

r() { echo "$out/$(echo "$1" | tr / -).yaml"; }
python3 policy.py platform="$(r platform/dev)" database="$(r overlays/dev/database)" \
  migrations="$(r overlays/dev/migrations)" services="$(r overlays/dev)"
echo "== policy: dev"
python3 policy.py --prod platform="$(r platform/prod)" database="$(r overlays/prod/database)" \
  migrations="$(r overlays/prod/migrations)" services="$(r overlays/prod)"
python3 policy.py --prod database="$(r overlays/prod/database)" services="$(r gitops/argocd/tradewatch)"
echo "== policy: prod (kubectl and Flux), prod (Argo CD)"

# checkov's Kubernetes checks, as a platform team's CI runs them, over what
# production deploys (the dev overlay runs local images by tag and a
# throwaway PostgreSQL, on purpose). Offline: nothing is downloaded.
CHECKOV=${CHECKOV:-checkov}
command -v "$CHECKOV" >/dev/null || { echo "k8s-check needs checkov (make k8s-check installs it)" >&2; exit 1; }
scan() { "$CHECKOV" --framework kubernetes --quiet --compact --skip-download "$@" 2>&1; }
prod=(overlays/prod overlays/prod/database overlays/prod/migrations gitops/argocd/tradewatch)
files=(); for d in "${prod[@]}"; do files+=(-f "$(r "$d")"); done
if ! report=$(scan "${files[@]}"); then
  printf 'k8s-check: checkov failed checks:\n%s\n' "$report" >&2; exit 1
fi
echo "== checkov: $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*' <<<"$report") (${prod[*]})"

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

# Negative tests: each file names, on its first line (`# expect: ...`), the
# error it must be rejected with; any other error fails the test too.
rejected() {
  local file=$1 expect output status rule
  shift
  expect=$(sed -n '1s/^# expect: //p' "$file")
  [ -n "$expect" ] || { echo "k8s-check: $file has no '# expect:' line" >&2; exit 1; }
  set +e; output=$("$@" 2>&1); status=$?; set -e
  if [ "$status" -eq 0 ]; then
    echo "k8s-check: $file was accepted: the check is not working" >&2; exit 1
  fi
  if ! grep -qF -- "$expect" <<<"$output"; then
    printf 'k8s-check: %s was rejected, but not for "%s":\n%s\n' "$file" "$expect" "$output" >&2; exit 1
  fi
  # Every error must be of the kind it names (the same policy rule, or the
  # same single error).
  rule=$(sed -n 's/^\(POLICY [a-z-]*:\).*/\1/p' <<<"$expect")
  if [ -n "$rule" ] && grep '^POLICY' <<<"$output" | grep -vqF -- "$rule"; then
    printf 'k8s-check: %s was rejected for more than "%s":\n%s\n' "$file" "$rule" "$output" >&2; exit 1
  fi
  if [ -z "$rule" ] && [ "$(grep -c '^ERROR' <<<"$output")" -ne 1 ]; then
    printf 'k8s-check: %s was rejected for more than one reason:\n%s\n' "$file" "$output" >&2; exit 1
  fi
  echo "== $file is rejected: $expect"
}
for f in testdata/validate/*.yaml; do
  rejected "$f" kubernetes-validate --strict -k "${VERSIONS[0]}" "$f"
done
for f in testdata/crd/*.yaml; do
  rejected "$f" python3 crdcheck.py crds "$f"
done
for f in testdata/policy/*.yaml; do
  role=services; grep -q '^# platform$' "$f" && role=platform
  prod=(); grep -q '^# prod$' "$f" && prod=(--prod)
  rejected "$f" python3 policy.py "${prod[@]}" "$role=$f"
done
for f in testdata/scan/*.yaml; do
  expect=$(sed -n '1s/^# expect: //p' "$f")
  set +e; output=$(scan --check "$expect" -f "$f"); status=$?; set -e
  if [ "$status" -eq 0 ] || ! grep -qF "Check: $expect" <<<"$output"; then
    printf 'k8s-check: %s was not rejected by checkov for %s:\n%s\n' "$f" "$expect" "$output" >&2; exit 1
  fi
  echo "== $f is rejected by checkov: $expect"
done
echo "== k8s-check: all checks passed"

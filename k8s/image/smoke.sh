#!/usr/bin/env bash
# `make images-test`: runs the images `make images` built, with podman, the
# way the Kubernetes manifests run them: read-only root filesystem, every
# capability dropped, no privilege escalation, user 65532, the settings of
# k8s/base/config, the database password from a mounted file. Against a
# fresh database on the PostgreSQL of the host's loopback it runs `migrate`,
# then `serve`, waits for gRPC health SERVING, creates a measure and
# resolves a duty on it, checks what the process runs as, and stops it with
# SIGTERM, which must end it (exit 0) within the grace period. Every image
# answers --version. Cleans up its container and its database; the images
# stay in podman's storage (localhost/tradewatch/<service>-service:TAG).
#
# Usage: smoke.sh OCI_DIR TAG   (PGURL: a server where it may create a database)
set -euo pipefail
oci=$1 tag=$2
here=$(cd "$(dirname "$0")" && pwd)
config="$here/../base/config"
admin=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
db="tradewatch_image_smoke_$$"
name="tradewatch-smoke-$$"
grace=35   # the Deployments' terminationGracePeriodSeconds
for tool in podman skopeo grpcurl psql; do
  command -v "$tool" >/dev/null || { echo "images-test needs $tool" >&2; exit 1; }
done

# What this machine's podman needs to start a container at all: crun refuses
# a hybrid cgroup v1/v2 hierarchy, runc takes it; podman's default rlimits
# are above what the process may set without CAP_SYS_RESOURCE.
run_flags=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
if [ -d /sys/fs/cgroup/unified ] && command -v runc >/dev/null; then run_flags+=(--runtime runc); fi
k8s_flags=(--read-only --cap-drop=ALL --security-opt=no-new-privileges --user 65532:65532 --network host)

pwfile=$(mktemp)
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  psql -q "$admin" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f "$pwfile"
}
trap cleanup EXIT

for s in tariff dispute dialogue relations; do
  skopeo copy -q "oci:$oci:$s-service:$tag" "containers-storage:localhost/tradewatch/$s-service:$tag" \
    2> >(grep -v 'level=info' >&2)
  v=$(podman run --rm "${run_flags[@]}" "${k8s_flags[@]}" "localhost/tradewatch/$s-service:$tag" --version)
  echo "== $s-service image runs: $v"
done

image="localhost/tradewatch/tariff-service:$tag"
psql -q "$admin" -c "CREATE DATABASE \"$db\""
# The host's server trusts loopback, so any password logs in; it is read
# from the file all the same, as in the cluster.
printf 'not-a-real-password\n' > "$pwfile"
chmod 0444 "$pwfile"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env_flags=(
  --env-file "$config/common.env" --env-file "$config/database.env" --env-file "$config/tariff.env"
  -e TRADEWATCH__SERVER__PORT="$port" -e TRADEWATCH__TELEMETRY__METRICS_PORT="$metrics"
  # The host's network, so its loopback only: no JWT issuer here, and the
  # service refuses to serve beyond loopback without auth.
  -e TRADEWATCH__SERVER__HOST=127.0.0.1
  -e TRADEWATCH__DATABASE__PASSWORD_FILE=/var/run/tradewatch/database-role/password
  -e TRADEWATCH__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
  -v "$pwfile:/var/run/tradewatch/database-role/password:ro"
)

podman run --rm "${run_flags[@]}" "${k8s_flags[@]}" "${env_flags[@]}" "$image" migrate
echo "== migrate against $db: done"

started=$(date +%s.%N)
podman run -d --name "$name" "${run_flags[@]}" "${k8s_flags[@]}" "${env_flags[@]}" "$image" serve >/dev/null
health() {
  grpcurl -plaintext -max-time 2 -d '{"service":"tradewatch.tariff.v1.TariffService"}' "127.0.0.1:$port" \
    grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'
}
for _ in $(seq 1 150); do health && break; sleep 0.2; done
health || { podman logs "$name" >&2; echo "images-test: not SERVING" >&2; exit 1; }
echo "== serve: SERVING after $(python3 -c "import time; print(round(time.time() - $started, 2))") s"

pid=$(podman inspect -f '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
nnp=$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] && [ "$caps" = 0000000000000000 ] && [ "$nnp" = 1 ] ||
  { echo "images-test: runs as uid $uid, capabilities $caps, no_new_privs $nnp" >&2; exit 1; }
if podman exec "$name" /bin/sh -c true 2>/dev/null; then echo "images-test: the image has a shell" >&2; exit 1; fi
echo "== runs as uid 65532, no capabilities, no_new_privs, no shell in the image"

grpcurl -plaintext -d '{"measure":{"reference":"SMOKE-MFN","title":"Most-favoured-nation rate on passenger cars","imposing_economy":"CAN","kind":"MEASURE_KIND_MFN","hs_codes":["8703"],"ad_valorem_percent":"6.1","effective_from":"2024-01-01"}}' \
  "127.0.0.1:$port" tradewatch.tariff.v1.TariffService/CreateMeasure >/dev/null
grpcurl -plaintext -d '{"measure":{"reference":"SMOKE-EV","title":"Surtax on Chinese-made electric vehicles","imposing_economy":"CAN","target_economies":["CHN"],"kind":"MEASURE_KIND_SURTAX","hs_codes":["8703.80"],"ad_valorem_percent":"100","effective_from":"2024-10-01"}}' \
  "127.0.0.1:$port" tradewatch.tariff.v1.TariffService/CreateMeasure >/dev/null
total=$(grpcurl -plaintext -d '{"importing_economy":"CAN","origin_economy":"CHN","hs_code":"8703.80.00","imported_on":"2025-01-15","customs_value":{"currency_code":"CAD","amount":"40000.00"}}' \
  "127.0.0.1:$port" tradewatch.tariff.v1.TariffService/ResolveDuty | python3 -c 'import json,sys; print(json.load(sys.stdin)["totalDuty"]["amount"])')
[ "$total" = "42440.00" ] || { echo "images-test: ResolveDuty answered $total, not 42440.00" >&2; exit 1; }
echo "== ResolveDuty: 42440.00 CAD on a CAD 40,000 car (6.1% MFN and the 100% surtax)"

t0=$(date +%s.%N)
podman stop -t "$grace" "$name" >/dev/null
took=$(python3 -c "import time; print(round(time.time() - $t0, 2))")
code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { podman logs "$name" >&2; echo "images-test: exit $code after SIGTERM" >&2; exit 1; }
python3 -c "import sys; sys.exit(0 if $took < $grace else 1)" || { echo "images-test: took ${took}s to stop" >&2; exit 1; }
echo "== SIGTERM: exited 0 after ${took}s (grace period ${grace}s)"
echo "== images-test: passed"

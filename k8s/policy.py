#!/usr/bin/env python3
"""Tradewatch's own deployment policy, checked on rendered manifests.

    policy.py [--prod] ROLE=FILE...

ROLE is what the file was rendered from: platform (the namespace), database,
migrations or services. --prod adds the production rules (images by digest,
verified TLS to the database, the connection budget, the database's network
policies). Each violation is one line `POLICY <rule>: <object>: <reason>`;
the exit status is 1 if there is any.
"""
import re
import sys

import yaml

LABELS = ["name", "instance", "component", "part-of", "managed-by"]
TEMPLATE_LABELS = ["name", "instance", "component", "part-of"]
PSA_MODES = ["enforce", "warn", "audit"]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# Connections PostgreSQL keeps for itself and the operator beside the roles:
# superuser_reserved_connections (3) and CloudNativePG's instance manager.
RESERVED_CONNECTIONS = 3 + 10

problems = []


def fail(rule, obj, reason):
    problems.append(f"POLICY {rule}: {ref(obj)}: {reason}")


def ref(obj):
    return f'{obj.get("kind")}/{(obj.get("metadata") or {}).get("name")}'


def pod_spec(obj):
    if obj.get("kind") in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    return None


def containers(obj):
    spec = pod_spec(obj)
    if not spec:
        return []
    return spec.get("initContainers", []) + spec.get("containers", [])


def selector_matches(selector, labels):
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def named_values(selector, key):
    """The values a selector pins `key` to, or None if it does not pin it."""
    if not selector:
        return None
    if key in (selector.get("matchLabels") or {}):
        return {selector["matchLabels"][key]}
    for expr in selector.get("matchExpressions") or []:
        if expr["key"] == key and expr["operator"] == "In":
            return set(expr["values"])
    return None


def memory(quantity):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity))
    return float(m.group(1)) * units.get(m.group(2), 1) if m else None


def check_resources(obj, where, resources):
    req = (resources or {}).get("requests", {}).get("memory")
    lim = (resources or {}).get("limits", {}).get("memory")
    if req is None or lim is None or memory(req) != memory(lim):
        fail("memory", obj, f"{where}: memory request {req} and limit {lim} must be set and equal")


def check_common(objs, roles):
    for role, obj in objs:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        missing = [k for k in LABELS if f"app.kubernetes.io/{k}" not in labels]
        if missing:
            fail("labels", obj, "missing " + ", ".join(f"app.kubernetes.io/{k}" for k in missing))
        spec = pod_spec(obj)
        if spec is not None:
            tl = obj["spec"]["template"].get("metadata", {}).get("labels") or {}
            missing = [k for k in TEMPLATE_LABELS if f"app.kubernetes.io/{k}" not in tl]
            if missing:
                fail("labels", obj, "pod template missing " + ", ".join(f"app.kubernetes.io/{k}" for k in missing))
            for c in containers(obj):
                check_resources(obj, f'container {c["name"]}', c.get("resources"))
        if obj["kind"] == "Cluster":
            check_resources(obj, "instances", obj["spec"].get("resources"))
        if obj["kind"] == "ObjectStore":
            check_resources(obj, "sidecar", (obj["spec"].get("instanceSidecarConfiguration") or {}).get("resources"))
        if obj["kind"] == "Namespace":
            if role != "platform":
                fail("namespace", obj, f"a Namespace in the {role} kustomization: pruning or deleting it would take the database; the platform owns it")
            for mode in PSA_MODES:
                if labels.get(f"pod-security.kubernetes.io/{mode}") != "restricted":
                    fail("pod-security", obj, f"pod-security.kubernetes.io/{mode} must be restricted")
                if not labels.get(f"pod-security.kubernetes.io/{mode}-version"):
                    fail("pod-security", obj, f"pod-security.kubernetes.io/{mode}-version must be set")

    by_kind = {}
    for _, obj in objs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj

    # No replicas beside an HPA.
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        target = hpa["spec"]["scaleTargetRef"]
        dep = by_kind.get(target["kind"], {}).get(target["name"])
        if dep is not None and "replicas" in dep["spec"]:
            fail("hpa-replicas", dep, f'sets replicas while HorizontalPodAutoscaler/{hpa["metadata"]["name"]} scales it')

    # Disruption budgets by maxUnavailable, and drains never blocked by unready pods.
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        if "minAvailable" in pdb["spec"] or "maxUnavailable" not in pdb["spec"]:
            fail("pdb", pdb, "must use maxUnavailable, not minAvailable")
        if pdb["spec"].get("unhealthyPodEvictionPolicy") != "AlwaysAllow":
            fail("pdb", pdb, "unhealthyPodEvictionPolicy must be AlwaysAllow (drains go on while the database is down)")

    # Topology spread that cannot leave pods Pending on tainted nodes.
    for dep in by_kind.get("Deployment", {}).values():
        for tsc in pod_spec(dep).get("topologySpreadConstraints", []):
            if tsc.get("whenUnsatisfiable") == "DoNotSchedule" and tsc.get("nodeTaintsPolicy") != "Honor":
                fail("spread", dep, f'DoNotSchedule over {tsc["topologyKey"]} needs nodeTaintsPolicy: Honor')

    # One pull policy per image, set explicitly, in Deployments and Jobs alike.
    policies = {}
    for _, obj in objs:
        for c in containers(obj):
            repo = re.split(r"[@:]", c["image"].rsplit("/", 1)[-1])[0]
            policies.setdefault(repo, set()).add(c.get("imagePullPolicy"))
    for repo, seen in sorted(policies.items()):
        if len(seen) != 1 or None in seen:
            problems.append(f"POLICY pull-policy: image {repo}: imagePullPolicy differs or is unset: {sorted(map(str, seen))}")

    # The services: settings by hashed ConfigMap (changes roll the pods),
    # connections that age out (rebalancing), readiness that outlasts a
    # database switchover.
    configmaps = by_kind.get("ConfigMap", {})
    for dep in by_kind.get("Deployment", {}).values():
        for c in containers(dep):
            env = resolved_env(c, configmaps)
            if "TRADEWATCH__DATABASE__URL" not in env:
                continue
            for src in c.get("envFrom", []):
                name = (src.get("configMapRef") or {}).get("name", "")
                if not re.search(r"-[a-z0-9]{10}$", name):
                    fail("config-hash", dep, f"ConfigMap {name} has no content hash: editing it would not roll the pods")
            if int(env.get("TRADEWATCH__SERVER__MAX_CONNECTION_AGE_SECS", "0") or 0) <= 0:
                fail("balancing", dep, "TRADEWATCH__SERVER__MAX_CONNECTION_AGE_SECS must be set: peers would stay on old replicas")
            rp = c.get("readinessProbe") or {}
            if rp.get("periodSeconds", 10) * rp.get("failureThreshold", 3) < 30:
                fail("readiness", dep, "readiness gives up in under 30 s: a database switchover would empty the Service")
    return by_kind


def resolved_env(container, configmaps):
    env = {}
    for src in container.get("envFrom", []):
        name = (src.get("configMapRef") or {}).get("name")
        if name in configmaps:
            env.update(configmaps[name].get("data") or {})
    for e in container.get("env", []):
        env[e["name"]] = e.get("value", "<from " + ",".join(e.get("valueFrom", {}).keys()) + ">")
    return env


def check_prod(objs, by_kind):
    configmaps = by_kind.get("ConfigMap", {})
    for _, obj in objs:
        for c in containers(obj):
            if "@sha256:" not in c["image"]:
                fail("digest", obj, f'container {c["name"]}: image {c["image"]} is not pinned by digest')
            env = resolved_env(c, configmaps)
            if "TRADEWATCH__DATABASE__URL" in env:
                url = env["TRADEWATCH__DATABASE__URL"]
                options = env.get("DATABASE_OPTIONS", "") if "$(DATABASE_OPTIONS)" in url else url
                if "sslmode=verify-full" not in options or "sslrootcert=" not in options:
                    fail("database-tls", obj, f'container {c["name"]}: the database URL must use sslmode=verify-full with sslrootcert')
                if re.search(r"://[^:/@]+:[^@$]+@", url):
                    fail("database-secret", obj, f'container {c["name"]}: a password written into the database URL')
    clusters = by_kind.get("Cluster", {})
    for cluster in clusters.values():
        if "@sha256:" not in cluster["spec"].get("imageName", ""):
            fail("digest", cluster, "imageName is not pinned by digest")
        if not cluster["spec"].get("plugins") and not cluster["spec"].get("backup"):
            fail("backup", cluster, "no WAL archive nor backup configured")
        check_budget(cluster, by_kind)
        check_database_policies(cluster, objs, by_kind)
    if clusters and not by_kind.get("ScheduledBackup"):
        problems.append("POLICY backup: no ScheduledBackup for the database")


def check_budget(cluster, by_kind):
    spec = cluster["spec"]
    params = (spec.get("postgresql") or {}).get("parameters") or {}
    max_connections = int(params.get("max_connections", 100))
    roles = (spec.get("managed") or {}).get("roles") or []
    limits = {}
    for role in roles:
        limit = role.get("connectionLimit", -1)
        if role.get("login") and limit < 0:
            fail("connections", cluster, f'role {role["name"]} has no connectionLimit')
        secret = (role.get("passwordSecret") or {}).get("name")
        limits[secret] = (role["name"], limit)
    total = sum(max(limit, 0) for _, limit in limits.values()) + RESERVED_CONNECTIONS
    if total > max_connections:
        fail("connections", cluster, f"roles' connection limits + {RESERVED_CONNECTIONS} reserved = {total} > max_connections {max_connections}")
    configmaps = by_kind.get("ConfigMap", {})
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    need = {}
    for kind in ("Deployment", "Job"):
        for obj in by_kind.get(kind, {}).values():
            for c in containers(obj):
                env = resolved_env(c, configmaps)
                if "TRADEWATCH__DATABASE__URL" not in env:
                    continue
                secret = next((e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                               if "secretKeyRef" in e.get("valueFrom", {})), None)
                pool = int(env.get("TRADEWATCH__DATABASE__MAX_CONNECTIONS", "10"))
                if kind == "Deployment":
                    hpa = hpas.get(obj["metadata"]["name"])
                    if hpa is None:
                        fail("connections", obj, "no HorizontalPodAutoscaler bounds its replicas")
                        continue
                    surge = obj["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", 1)
                    pods = hpa["spec"]["maxReplicas"] + (surge if isinstance(surge, int) else 1)
                    need[secret] = need.get(secret, 0) + pods * pool
                else:
                    need[secret] = need.get(secret, 0) + pool
    for secret, n in sorted(need.items(), key=lambda kv: str(kv[0])):
        if secret not in limits:
            problems.append(f"POLICY connections: Secret {secret}: no managed role reads its password from it")
        elif n > limits[secret][1] >= 0:
            problems.append(f"POLICY connections: role {limits[secret][0]}: its pods may open {n} connections, its limit is {limits[secret][1]}")


def check_database_policies(cluster, objs, by_kind):
    name = cluster["metadata"]["name"]
    ns = cluster["metadata"].get("namespace")
    pod = dict((cluster["spec"].get("inheritedMetadata") or {}).get("labels") or {})
    pod.update({"cnpg.io/cluster": name, "cnpg.io/podRole": "instance", "app.kubernetes.io/name": "postgresql",
                "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "database",
                "app.kubernetes.io/managed-by": "cloudnative-pg"})
    clients = set()
    for kind in ("Deployment", "Job"):
        for obj in by_kind.get(kind, {}).values():
            if any("TRADEWATCH__DATABASE__URL" in resolved_env(c, by_kind.get("ConfigMap", {})) for c in containers(obj)):
                clients.add(obj["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name"))
    selecting = [p for p in by_kind.get("NetworkPolicy", {}).values()
                 if p["metadata"].get("namespace") == ns and selector_matches(p["spec"]["podSelector"], pod)]
    if not any("Ingress" in p["spec"].get("policyTypes", ["Ingress"]) for p in selecting):
        fail("database-network", cluster, "no NetworkPolicy restricts ingress to its instances")
    allowed_ports = {"client": {5432}, "instance": {5432, 8000}, "operator": {5432, 8000}, "monitoring": {9187}}
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            peers, ports = rule.get("from") or [], {p.get("port") for p in rule.get("ports") or []}
            if not peers or not ports:
                fail("database-network", policy, f"admits every source or every port to the {name} instances")
                continue
            for peer in peers:
                kind = classify(peer, name, clients)
                if kind is None:
                    fail("database-network", policy, f"admits {peer} to the {name} instances: only its services, the operator, the instances and monitoring may reach them")
                elif not ports <= allowed_ports[kind]:
                    fail("database-network", policy, f"admits {kind} peers on ports {sorted(ports)} to the {name} instances")
    if any("Egress" in p["spec"].get("policyTypes", []) for p in selecting):
        egress = [r for p in selecting for r in p["spec"].get("egress") or []]
        def allows(port, proto="TCP", to_instances=False):
            for r in egress:
                if any(p.get("port") == port and p.get("protocol", "TCP") == proto for p in r.get("ports") or []) or not r.get("ports"):
                    if not to_instances or not r.get("to") or any(
                            selector_matches(t.get("podSelector"), pod) and "namespaceSelector" not in t for t in r["to"]):
                        return True
            return False
        for what, ok in (("DNS (53/UDP)", allows(53, "UDP")), ("replication (5432 to the instances)", allows(5432, to_instances=True)),
                         ("the API server (443 or 6443)", allows(443) or allows(6443))):
            if not ok:
                fail("database-network", cluster, f"its instances' egress is restricted and misses {what}")


def classify(peer, cluster, clients):
    if "ipBlock" in peer:
        return None
    pods, nss = peer.get("podSelector"), peer.get("namespaceSelector")
    if nss is None:
        if named_values(pods, "cnpg.io/cluster") == {cluster}:
            return "instance"
        names = named_values(pods, "app.kubernetes.io/name")
        if names and names <= clients:
            return "client"
        return None
    ns_names = named_values(nss, "kubernetes.io/metadata.name")
    if ns_names == {"monitoring"}:
        return "monitoring"
    if ns_names and len(ns_names) == 1 and named_values(pods, "app.kubernetes.io/name") == {"cloudnative-pg"}:
        return "operator"
    return None


def main(argv):
    prod = "--prod" in argv
    objs = []
    roles = set()
    for arg in argv[1:]:
        if arg == "--prod":
            continue
        role, _, path = arg.partition("=")
        if role not in ("platform", "database", "migrations", "services") or not path:
            print(__doc__, file=sys.stderr)
            return 2
        roles.add(role)
        objs += [(role, d) for d in yaml.safe_load_all(open(path)) if d]
    by_kind = check_common(objs, roles)
    if prod:
        check_prod(objs, by_kind)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

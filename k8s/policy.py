#!/usr/bin/env python3
"""Tradewatch's own deployment policy, checked on rendered manifests.

    policy.py [--prod] ROLE=FILE...

ROLE is what the file was rendered from: platform (the namespace), database,
migrations or services. --prod adds the production rules (images by digest,
verified TLS to the database, the connection budget, the database's network
policies, the service graph's network policies and grants). Each violation
is one line `POLICY <rule>: <object>: <reason>`; the exit status is 1 if
there is any.

SERVICES below is the service graph: each service's gRPC port, whether it
keeps a database, and the scopes its calls need from each peer. A service
that keeps a database must have one (URL, migration Job); one that keeps
none (relations) must have nothing of one (no database settings or
Secrets, no migration Job, no role, no egress to the database's port).
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
# The services (Deployments and pods by app.kubernetes.io/name): gRPC port
# (metrics on port + 1000), whether it keeps a database, and the scopes its
# calls need from each peer it calls, which the peer's TRADEWATCH__AUTH__GRANTS
# must give its service account (and no more) and the network policies must
# let through. Nothing in the namespace calls relations.
SERVICES = {
    "tariff": {"port": 50052, "database": True, "calls": {}},
    "dispute": {"port": 50051, "database": True, "calls": {"tariff": ["tariff:read"]}},
    "dialogue": {"port": 50053, "database": True,
                 "calls": {"tariff": ["tariff:read", "tariff:write"], "dispute": ["dispute:read", "dispute:write"]}},
    "relations": {"port": 50054, "database": False,
                  "calls": {"tariff": ["tariff:read"], "dispute": ["dispute:read"], "dialogue": ["dialogue:read"]}},
}
DATABASE_PORT = 5432

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

    # The services (all four, with or without a database): settings by hashed
    # ConfigMap (changes roll the pods), connections that age out
    # (rebalancing), readiness that outlasts a passing failure (a database
    # switchover).
    configmaps = by_kind.get("ConfigMap", {})
    for dep in by_kind.get("Deployment", {}).values():
        for c in containers(dep):
            env = resolved_env(c, configmaps)
            if service_of(dep) is None and "TRADEWATCH__DATABASE__URL" not in env:
                continue
            for src in c.get("envFrom", []):
                name = (src.get("configMapRef") or {}).get("name", "")
                if not re.search(r"-[a-z0-9]{10}$", name):
                    fail("config-hash", dep, f"ConfigMap {name} has no content hash: editing it would not roll the pods")
            if int(env.get("TRADEWATCH__SERVER__MAX_CONNECTION_AGE_SECS", "0") or 0) <= 0:
                fail("balancing", dep, "TRADEWATCH__SERVER__MAX_CONNECTION_AGE_SECS must be set: peers would stay on old replicas")
            rp = c.get("readinessProbe") or {}
            if rp.get("periodSeconds", 10) * rp.get("failureThreshold", 3) < 30:
                fail("readiness", dep, "readiness gives up in under 30 s: a passing failure (a database switchover) would empty the Service")
    check_databases(objs, roles, by_kind)
    return by_kind


def service_of(obj):
    """The service (a key of SERVICES) a Deployment runs, or None."""
    if obj.get("kind") != "Deployment":
        return None
    name = (obj["spec"]["template"].get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/name")
    return name if name in SERVICES else None


def image_repo(image):
    return re.split(r"[@:]", image.rsplit("/", 1)[-1])[0]


def check_databases(objs, roles, by_kind):
    """A service that keeps a database has one; one that keeps none has
    nothing of one."""
    configmaps = by_kind.get("ConfigMap", {})
    services = {service_of(d): d for d in by_kind.get("Deployment", {}).values() if service_of(d)}
    jobs = list(by_kind.get("Job", {}).values())
    migrates = {}
    for job in jobs:
        for c in containers(job):
            if "migrate" in (c.get("args") or []) + (c.get("command") or []):
                migrates.setdefault(image_repo(c["image"]), []).append(job)
    with_migrations = "migrations" in roles or bool(jobs)
    for name, dep in sorted(services.items()):
        keeps = SERVICES[name]["database"]
        repo = f"{name}-service"
        for c in containers(dep):
            env = resolved_env(c, configmaps)
            if keeps:
                if "TRADEWATCH__DATABASE__URL" not in env:
                    fail("database", dep, f"container {c['name']}: {name} keeps a database but has no TRADEWATCH__DATABASE__URL")
                continue
            given = sorted(k for k in env if k.startswith("TRADEWATCH__DATABASE__") or k.startswith("DATABASE_"))
            if given:
                fail("no-database", dep, f"container {c['name']}: {name} keeps no database but is given {', '.join(given)}")
        if keeps:
            if with_migrations and repo not in migrates:
                fail("database", dep, f"{name} keeps a database but no migration Job runs `{repo} migrate`")
            continue
        spec = pod_spec(dep)
        secrets = {(e.get("valueFrom") or {}).get("secretKeyRef", {}).get("name") for c in containers(dep) for e in c.get("env", [])}
        secrets |= {(src.get("secretRef") or {}).get("name") for c in containers(dep) for src in c.get("envFrom", [])}
        secrets |= {(v.get("secret") or {}).get("secretName") for v in spec.get("volumes", [])}
        for secret in sorted(s for s in secrets if s and re.fullmatch(r"tradewatch-(.+-)?db(-.*)?", s)):
            fail("no-database", dep, f"{name} keeps no database but reads the database's Secret {secret}")
    for name, props in sorted(SERVICES.items()):
        if props["database"]:
            continue
        for job in migrates.get(f"{name}-service", []):
            fail("no-database", job, f"runs `{name}-service migrate`: {name} keeps no database, there is nothing to migrate")
        for cluster in by_kind.get("Cluster", {}).values():
            for role in (cluster["spec"].get("managed") or {}).get("roles") or []:
                if role.get("name") == name:
                    fail("no-database", cluster, f"a login role for {name}, which keeps no database")
        for db in by_kind.get("Database", {}).values():
            if name in (db["spec"].get("name"), db["spec"].get("owner")):
                fail("no-database", db, f"a database for {name}, which keeps no database")


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
    check_service_network(by_kind)
    check_grants(by_kind)
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


def database_secret(obj, container):
    """The Secret a container logs in to the database with: one its env reads
    (secretKeyRef), or the role's Secret mounted as a file."""
    for e in container.get("env", []):
        if "secretKeyRef" in e.get("valueFrom", {}):
            return e["valueFrom"]["secretKeyRef"]["name"]
    mounted = {m["name"] for m in container.get("volumeMounts", [])}
    for v in pod_spec(obj).get("volumes", []):
        name = (v.get("secret") or {}).get("secretName", "")
        if v["name"] in mounted and re.fullmatch(r"tradewatch-.+-db", name):
            return name
    return None


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
                secret = database_secret(obj, c)
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
    # Every workload that keeps this database reaches it: let out to the
    # instances on 5432 by its own policies, and let in by theirs.
    for kind in ("Deployment", "Job"):
        for obj in sorted(by_kind.get(kind, {}).values(), key=ref):
            if obj["metadata"].get("namespace") != ns or not any(
                    "TRADEWATCH__DATABASE__URL" in resolved_env(c, by_kind.get("ConfigMap", {})) for c in containers(obj)):
                continue
            labels = obj["spec"]["template"]["metadata"].get("labels") or {}
            out = [r for p in by_kind.get("NetworkPolicy", {}).values()
                   if p["metadata"].get("namespace") == ns and "Egress" in policy_types(p) and selector_matches(p["spec"]["podSelector"], labels)
                   for r in p["spec"].get("egress") or [None]]
            if out and not any(r and port_allowed(r, DATABASE_PORT) and any(peer_matches(t, ns, pod) for t in r.get("to") or [{}]) for r in out):
                fail("database-network", obj, f"keeps a database but no NetworkPolicy lets it out to the {name} instances on {DATABASE_PORT}")
            into = [r for p in selecting if "Ingress" in policy_types(p) for r in p["spec"].get("ingress") or [None]]
            if into and not any(r and port_allowed(r, DATABASE_PORT) and any(peer_matches(f, ns, labels) for f in r.get("from") or [{}]) for r in into):
                fail("database-network", obj, f"keeps a database but the {name} instances' NetworkPolicies do not admit it on {DATABASE_PORT}")
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


def policy_types(policy):
    types = policy["spec"].get("policyTypes")
    if types:
        return set(types)
    return {"Ingress"} | ({"Egress"} if "egress" in policy["spec"] else set())


def policies_selecting(by_kind, ns, labels, direction):
    return [p for p in by_kind.get("NetworkPolicy", {}).values()
            if p["metadata"].get("namespace") == ns and direction in policy_types(p)
            and selector_matches(p["spec"]["podSelector"], labels)]


def port_allowed(rule, port, names=()):
    """Whether a NetworkPolicy rule lets TCP `port` through (or a port by one
    of `names`)."""
    ports = rule.get("ports") or []
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        value, end = p.get("port"), p.get("endPort")
        if value is None or value == port or value in names or (isinstance(value, int) and end and value <= port <= end):
            return True
    return not ports


def peer_matches(peer, ns, labels):
    """Whether a NetworkPolicy peer surely takes in the pods `labels` of the
    namespace `ns` (an absent peer list, {}, takes in everything)."""
    if not peer:
        return True
    if "ipBlock" in peer:
        return False
    nss = peer.get("namespaceSelector")
    if nss is not None and nss != {} and named_values(nss, "kubernetes.io/metadata.name") != {ns}:
        return False
    pods = peer.get("podSelector")
    if pods is None:
        return nss is not None
    return selector_matches(pods, labels)


def template_labels(dep):
    return dep["spec"]["template"].get("metadata", {}).get("labels") or {}


def check_service_network(by_kind):
    """The service graph, and nothing else: each service reaches the peers it
    calls and is reached by them; into a service come only its callers,
    client namespaces (tradewatch.io/client=true) on its gRPC port and
    Prometheus on the metrics ports; a service that keeps no database has no
    way out to the database's port."""
    services = {service_of(d): d for d in by_kind.get("Deployment", {}).values() if service_of(d)}
    metrics_ports = {props["port"] + 1000 for props in SERVICES.values()}
    for name, dep in sorted(services.items()):
        ns, labels, port = dep["metadata"].get("namespace"), template_labels(dep), SERVICES[name]["port"]
        callers = {s for s, props in SERVICES.items() if name in props["calls"]}
        ingress = policies_selecting(by_kind, ns, labels, "Ingress")
        if not ingress:
            fail("service-network", dep, f"no NetworkPolicy restricts ingress to {name}")
        for policy in ingress:
            for rule in policy["spec"].get("ingress") or []:
                ports = {p.get("port") for p in rule.get("ports") or []}
                peers = rule.get("from") or []
                if not peers:
                    fail("service-network", policy, f"admits every source to {name}")
                    continue
                for peer in peers:
                    nss, pods = peer.get("namespaceSelector"), peer.get("podSelector")
                    if "ipBlock" in peer:
                        fail("service-network", policy, f"admits {peer} to {name}: only its callers, clients and monitoring may reach it")
                    elif nss is None:
                        names = named_values(pods, "app.kubernetes.io/name")
                        if not names:
                            fail("service-network", policy, f"admits {peer} (pods it does not name) to {name}")
                        elif names - callers:
                            fail("service-network", policy, f"admits {', '.join(sorted(names - callers))} pods to {name}, which "
                                 + ("nothing in the namespace calls" if not callers else f"only {', '.join(sorted(callers))} call"))
                        elif not ports or not ports <= {port, "grpc"}:
                            fail("service-network", policy, f"admits its callers to {name} on ports {sorted(map(str, ports)) or 'all'}, not only {port}")
                    elif (nss.get("matchLabels") or {}).get("tradewatch.io/client") == "true" and pods is None:
                        if not ports or not ports <= {port, "grpc"}:
                            fail("service-network", policy, f"admits client namespaces to {name} on ports {sorted(map(str, ports)) or 'all'}, not only {port}")
                    elif named_values(nss, "kubernetes.io/metadata.name") == {"monitoring"}:
                        if not ports or not ports <= metrics_ports | {"metrics"}:
                            fail("service-network", policy, f"admits monitoring to {name} on ports {sorted(map(str, ports)) or 'all'}, not only the metrics ports")
                    else:
                        fail("service-network", policy, f"admits {peer} to {name}: only its callers, clients and monitoring may reach it")
        egress = policies_selecting(by_kind, ns, labels, "Egress")
        for callee in sorted(SERVICES[name]["calls"]):
            if callee not in services:
                continue
            target, cport = services[callee], SERVICES[callee]["port"]
            tns, tlabels = target["metadata"].get("namespace"), template_labels(target)
            if egress and not any(port_allowed(r, cport, ("grpc",)) and (not r.get("to") or any(peer_matches(t, tns, tlabels) for t in r["to"]))
                                  for p in egress for r in p["spec"].get("egress") or []):
                fail("service-network", dep, f"{name} calls {callee} but no NetworkPolicy lets it out to {callee} on {cport}")
            admitted = policies_selecting(by_kind, tns, tlabels, "Ingress")
            if admitted and not any(port_allowed(r, cport, ("grpc",)) and any(peer_matches(f, ns, labels) for f in r.get("from") or [{}])
                                    for p in admitted for r in p["spec"].get("ingress") or []):
                fail("service-network", target, f"{name} calls {callee} but no NetworkPolicy admits {name} to {callee} on {cport}")
        if SERVICES[name]["database"]:
            continue
        if not egress:
            fail("no-database", dep, f"{name} keeps no database but no NetworkPolicy restricts its egress: it may reach the database on {DATABASE_PORT}")
        for policy in egress:
            for rule in policy["spec"].get("egress") or []:
                if not port_allowed(rule, DATABASE_PORT, ("postgresql", "postgres")):
                    continue
                others = [t for t in rule.get("to") or [{}]
                          if not (t.get("namespaceSelector") is None and "ipBlock" not in t
                                  and (named_values(t.get("podSelector"), "app.kubernetes.io/name") or {"?"}) <= set(SERVICES) - {name})]
                if others:
                    fail("no-database", policy, f"lets {name}, which keeps no database, out on {DATABASE_PORT} (the database's port) to {others}")


def check_grants(by_kind):
    """Where a service checks tokens (TRADEWATCH__AUTH__MODE=jwt), its grants
    give each service that calls it exactly the scopes its calls need."""
    configmaps = by_kind.get("ConfigMap", {})
    services = {service_of(d): d for d in by_kind.get("Deployment", {}).values() if service_of(d)}
    needs = {s: {scope for scopes in props["calls"].values() for scope in scopes} for s, props in SERVICES.items()}
    for name, dep in sorted(services.items()):
        ns = dep["metadata"].get("namespace") or "default"
        for c in containers(dep):
            env = resolved_env(c, configmaps)
            if env.get("TRADEWATCH__AUTH__MODE") != "jwt":
                continue
            grants = {}
            for entry in env.get("TRADEWATCH__AUTH__GRANTS", "").split(";"):
                subject, _, scopes = entry.partition("=")
                if subject.strip():
                    grants.setdefault(subject.strip(), set()).update(scopes.split())
            for caller, props in sorted(SERVICES.items()):
                sa = pod_spec(services[caller]).get("serviceAccountName", caller) if caller in services else caller
                subject = f"system:serviceaccount:{ns}:{sa}"
                have = grants.get(subject, set())
                missing = set(props["calls"].get(name, [])) - have
                if missing:
                    fail("grants", dep, f"{name} does not grant {subject} {' '.join(sorted(missing))}: the calls of {caller} to it would be PERMISSION_DENIED")
                extra = have - needs[caller]
                if extra:
                    fail("grants", dep, f"{name} grants {subject} {' '.join(sorted(extra))}, more than the calls of {caller} need")


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

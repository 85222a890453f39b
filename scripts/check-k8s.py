#!/usr/bin/env python3
"""The consistency checks of `scripts/check-k8s.sh` (which renders k8s/ and
says the code's facts first): schema validation of every rendered resource,
and the manifests, the Dapr resources, the Dockerfile and
scripts/deploy.sh checked against each other, against dapr/dev.yaml and
against the facts the code exports. One `check(...)` per rule.

    check-k8s.py OVERLAY.yaml BASE.yaml K8S_VERSION FACTS.json
"""
import base64
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import yaml

OVERLAY, BASE, K8S_VERSION, FACTS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ROOT = Path.cwd()
NAMESPACE = "todo"

# The facts the deployment must agree with, each from its one home: the app
# ids and their ports from dapr/dev.yaml (app id -> (app gRPC port, Dapr
# gRPC port, Dapr HTTP port)); ports, schemas and topics from the code.
FACTS_JSON = json.loads(Path(FACTS).read_text())
RUN_FILE = yaml.safe_load((ROOT / "dapr/dev.yaml").read_text())
SERVICES = {
    a["appID"]: (a.get("appPort"), a.get("daprGRPCPort"), a.get("daprHTTPPort"))
    for a in RUN_FILE.get("apps", [])
}
DEV_ONLY = {"dev-sidecar"}
TOPICS = list(FACTS_JSON["topics"])
DLQS = list(FACTS_JSON["dead_letter_topics"])
SECURITY_HELP = "runAsNonRoot, allowPrivilegeEscalation=false, capabilities.drop=[ALL], seccomp RuntimeDefault"

errors = []
count = 0


def check(condition, message):
    global count
    count += 1
    if not condition:
        errors.append(message)
    return bool(condition)


def load_all(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def text(path):
    return (ROOT / path).read_text()


# ---------------------------------------------------------------- the code
workspace = tomllib.loads(text("Cargo.toml"))["workspace"]["members"]
# Every folder under services/ is a service that ships (a workspace member
# by the `services/*` glob), and only those.
check("services/*" in workspace, "Cargo.toml: the workspace no longer takes every folder under services/")
member_names = {p.name for p in (ROOT / "services").iterdir() if (p / "Cargo.toml").is_file()}
check(member_names == set(SERVICES),
      f"the crates under services/ {sorted(member_names)} != dev.yaml's app ids {sorted(SERVICES)}")

check(set(FACTS_JSON["services"]) == set(SERVICES),
      f"the services in the code {sorted(FACTS_JSON['services'])} != dev.yaml's app ids {sorted(SERVICES)}")
code = {}  # service -> dict(db, auth, watch, schema)
for name, (port, _, _) in SERVICES.items():
    facts = FACTS_JSON["services"].get(name, {})
    check(facts.get("port") == port,
          f"{name}: its default port in the code is {facts.get('port')}, dev.yaml says {port}")
    cfg = ROOT / "services" / name / "src" / "config.rs"
    if not check(cfg.exists(), f"{cfg} is missing"):
        continue
    # Which settings a service reads: the types its configuration is made of.
    src = cfg.read_text()
    info = {"db": facts.get("schema") is not None, "auth": "AuthConfig" in src,
            "watch": "WATCH_PUBSUB_NAME" in src, "schema": facts.get("schema")}
    check(info["db"] == ("DatabaseConfig" in src),
          f"{name}: reads a database configuration iff it owns a schema")
    if info["db"]:
        check((ROOT / "services" / name / "migrations").is_dir(),
              f"{name}: owns a schema but has no migrations/ directory")
    code[name] = info

# ------------------------------------------------ schema validation (strict)
rendered = load_all(OVERLAY)
base_rendered = load_all(BASE)
for label, doc in [("overlay", d) for d in rendered] + [("base", d) for d in base_rendered]:
    if doc.get("apiVersion", "").startswith("dapr.io/"):
        continue  # CRDs: no bundled schema; checked by hand below
    where = f'{label} {doc["kind"]}/{doc["metadata"]["name"]}'
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        count += 1
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        errors.append(f"schema: {where}: {path}: {e.message}")
    except kubernetes_validate.SchemaNotFoundError as e:
        errors.append(f"schema: {where}: {e.message}")

# ------------------------------------------------------- rendered overlay
objs = {}
for doc in rendered:
    key = (doc["kind"], doc["metadata"]["name"])
    check(key not in objs, f"duplicate {key}")
    objs[key] = doc
    if doc["kind"] != "Namespace":
        check(doc["metadata"].get("namespace") == NAMESPACE,
              f'{doc["kind"]}/{doc["metadata"]["name"]} is not in namespace {NAMESPACE}')
check(("Namespace", NAMESPACE) in objs, f"no Namespace {NAMESPACE}")


def of_kind(kind):
    return {n: d for (k, n), d in objs.items() if k == kind}


secrets = {n: {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
           for n, d in of_kind("Secret").items()}
for n, d in of_kind("Secret").items():
    secrets[n].update(d.get("stringData") or {})
configmaps = {n: d.get("data") or {} for n, d in of_kind("ConfigMap").items()}
services_k8s = of_kind("Service")
components = of_kind("Component")
configurations = of_kind("Configuration")
resiliencies = of_kind("Resiliency")

check(not any(k == "Subscription" for k, _ in objs),
      "declarative Dapr Subscription found: subscriptions are declared in code (ListTopicSubscriptions)")


def pod_templates():
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, d in of_kind(kind).items():
            yield kind, name, d["spec"]["template"]


def resolve_host_port(host, port, what):
    """host is `svc`, `svc.ns`, `svc.ns.svc[.cluster.local]` or `pod.svc.ns.svc...`."""
    parts = host.split(".")
    suffix = [p for p in parts[1:]]
    candidates = []
    # service in our namespace, possibly with a StatefulSet pod prefix
    for i in range(len(parts)):
        svc, rest = parts[i], parts[i + 1:]
        if rest and rest[0] != NAMESPACE:
            continue
        if rest[1:] not in ([], ["svc"], ["svc", "cluster", "local"]):
            continue
        candidates.append((svc, parts[:i]))
    for svc, prefix in candidates:
        s = services_k8s.get(svc)
        if not s:
            continue
        if prefix:  # pod-name.service: the StatefulSet behind a headless service
            sts = [d for d in of_kind("StatefulSet").values() if d["spec"].get("serviceName") == svc]
            ok = s["spec"].get("clusterIP") == "None" and any(
                re.fullmatch(rf'{re.escape(d["metadata"]["name"])}-\d+', prefix[0])
                and int(prefix[0].rsplit("-", 1)[1]) < d["spec"].get("replicas", 1) for d in sts)
            if not check(ok, f"{what}: {host} is not a pod of a StatefulSet behind headless Service {svc}"):
                return
        ports = [p["port"] for p in s["spec"]["ports"]]
        check(int(port) in ports, f"{what}: Service {svc} has no port {port} (has {ports})")
        return svc
    check(False, f"{what}: {host}:{port} does not resolve to a Service in namespace {NAMESPACE}")


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def quantity(q):
    q = str(q)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for u, f in units.items():
        if q.endswith(u):
            return float(q[: -len(u)]) * f
    return float(q)


def container_env(pod, c):
    env = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            cm = src["configMapRef"]["name"]
            if check(cm in configmaps, f'{c["name"]}: envFrom ConfigMap {cm} does not exist'):
                env.update({k: {"value": v} for k, v in configmaps[cm].items()})
        if "secretRef" in src:
            s = src["secretRef"]["name"]
            if check(s in secrets, f'{c["name"]}: envFrom Secret {s} does not exist'):
                env.update({k: {"value": v} for k, v in secrets[s].items()})
    for e in c.get("env", []):
        env[e["name"]] = e
    return env


def env_value(env, name):
    """The value of an env var with secrets and $(VAR) references resolved."""
    e = env.get(name)
    if e is None:
        return None
    if "value" in e:
        return re.sub(r"\$\((\w+)\)", lambda m: env_value(env, m.group(1)) or m.group(0), e["value"])
    ref = e.get("valueFrom", {}).get("secretKeyRef")
    if ref:
        return secrets.get(ref["name"], {}).get(ref["key"])
    ref = e.get("valueFrom", {}).get("configMapKeyRef")
    if ref:
        return configmaps.get(ref["name"], {}).get(ref["key"])
    return None


# Every pod template: references resolve, resources set, restricted-style security.
for kind, name, tpl in pod_templates():
    spec = tpl["spec"]
    psc = spec.get("securityContext", {})
    where = f"{kind}/{name}"
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            check(vol["configMap"]["name"] in configmaps, f'{where}: volume ConfigMap {vol["configMap"]["name"]} missing')
        if "secret" in vol:
            check(vol["secret"]["secretName"] in secrets, f'{where}: volume Secret {vol["secret"]["secretName"]} missing')
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        cw = f'{where} container {c["name"]}'
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                check(ref["key"] in secrets.get(ref["name"], {}),
                      f'{cw}: env {e["name"]} refers to missing Secret key {ref["name"]}/{ref["key"]}')
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                check(ref["key"] in configmaps.get(ref["name"], {}),
                      f'{cw}: env {e["name"]} refers to missing ConfigMap key {ref["name"]}/{ref["key"]}')
        container_env(spec, c)
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                check(r in res.get(part, {}), f"{cw}: resources.{part}.{r} not set")
        for r in ("cpu", "memory"):
            if r in res.get("requests", {}) and r in res.get("limits", {}):
                check(quantity(res["requests"][r]) <= quantity(res["limits"][r]), f"{cw}: {r} request above limit")
        sc = c.get("securityContext", {})
        eff = lambda k: sc.get(k, psc.get(k))
        check(eff("runAsNonRoot") is True, f"{cw}: not runAsNonRoot ({SECURITY_HELP})")
        uid = eff("runAsUser")
        check(uid is None or uid != 0, f"{cw}: runs as uid 0")
        check(sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation is not false")
        check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{cw}: capabilities.drop lacks ALL")
        check((eff("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{cw}: seccompProfile is not RuntimeDefault")
        check(not sc.get("privileged"), f"{cw}: privileged")

# Every Service selects some pod template and its named target ports exist.
for sname, s in services_k8s.items():
    sel = s["spec"].get("selector", {})
    pods = [(k, n, t) for k, n, t in pod_templates() if k != "Job" and labels_match(sel, t["metadata"].get("labels", {}))]
    if check(sel and pods, f"Service {sname} selects no workload"):
        named = {p["name"] for _, _, t in pods for c in t["spec"]["containers"] for p in c.get("ports", []) if "name" in p}
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            if isinstance(tp, str):
                check(tp in named, f"Service {sname}: targetPort {tp} is not a named container port")

# ------------------------------------------------------- the five services
deployments = of_kind("Deployment")
dapr_apps = {}
for name, d in deployments.items():
    ann = d["spec"]["template"]["metadata"].get("annotations", {})
    if ann.get("dapr.io/enabled") == "true":
        dapr_apps[ann.get("dapr.io/app-id")] = name
check(set(dapr_apps) == set(SERVICES),
      f"Dapr-enabled Deployments have app ids {sorted(dapr_apps)}, expected exactly {sorted(SERVICES)}")
for dev in DEV_ONLY:
    check(dev not in deployments and dev not in dapr_apps, f"{dev} is development-only and must not be deployed")

pubsub_name = None
for name, (port, _, _) in SERVICES.items():
    d = deployments.get(name)
    if not check(d, f"no Deployment {name}"):
        continue
    info = code.get(name, {})
    tpl = d["spec"]["template"]
    spec = tpl["spec"]
    ann = tpl["metadata"].get("annotations", {})
    labels = tpl["metadata"].get("labels", {})
    check(labels_match(d["spec"]["selector"]["matchLabels"], labels), f"{name}: selector does not match pod labels")
    want = {"dapr.io/enabled": "true", "dapr.io/app-id": name, "dapr.io/app-port": str(port),
            "dapr.io/app-protocol": "grpc"}
    for k, v in want.items():
        check(ann.get(k) == v, f"{name}: annotation {k} is {ann.get(k)!r}, expected {v!r}")
    check(ann.get("dapr.io/config") in configurations,
          f'{name}: dapr.io/config {ann.get("dapr.io/config")!r} is not a rendered Configuration')
    for a in ("dapr.io/api-token-secret", "dapr.io/app-token-secret"):
        check("token" in secrets.get(ann.get(a), {}),
              f"{name}: {a} {ann.get(a)!r} is not a Secret with key `token` (Dapr looks it up by this exact name)")
    cs = [c for c in spec["containers"] if c["name"] == name]
    if not check(len(cs) == 1, f"{name}: no container named {name}"):
        continue
    c = cs[0]
    check(c["image"] == f"todo/{name}:dev", f'{name}: image {c["image"]} != todo/{name}:dev')
    check(c.get("imagePullPolicy") == "Never", f"{name}: imagePullPolicy must be Never on Minikube (images built in its Docker)")
    check(any(p["containerPort"] == port for p in c.get("ports", [])), f"{name}: container does not expose {port}")
    sc = c.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem is not true")
    for probe in ("readinessProbe", "livenessProbe"):
        p = c.get(probe)
        check(p and p.get("grpc", {}).get("port") == port, f"{name}: {probe} is not a gRPC probe on {port}")
    if "startupProbe" in c:
        check(c["startupProbe"].get("grpc", {}).get("port") == port, f"{name}: startupProbe is not a gRPC probe on {port}")
    # Found in the cluster: a rolling restart refused connections to the
    # Service while kube-proxy still routed to a pod that had stopped
    # listening. The pod must keep serving for a moment after it is told to go.
    pause = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    graceful = int(ann.get("dapr.io/graceful-shutdown-seconds", "0"))
    check(3 <= pause and pause + graceful <= grace,
          f"{name}: needs a preStop sleep of at least 3 s that, with daprd's graceful shutdown "
          f"({graceful} s), fits the grace period ({grace} s); has {pause} s")
    env = container_env(spec, c)
    check(env_value(env, "APP_PORT") in (None, str(port)), f"{name}: APP_PORT {env_value(env, 'APP_PORT')} != {port}")
    check(env_value(env, "APP_HOST") in (None, "0.0.0.0"), f"{name}: APP_HOST must listen on all interfaces")
    # Tokens: the app's copies come from the very Secrets daprd is told about.
    for var, a in (("DAPR_API_TOKEN", "dapr.io/api-token-secret"), ("APP_API_TOKEN", "dapr.io/app-token-secret")):
        ref = (env.get(var) or {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(ref.get("name") == ann.get(a) and ref.get("key") == "token",
              f"{name}: {var} must come from Secret {ann.get(a)}/token (the one {a} names)")
    ps = env_value(env, "PUBSUB_NAME") or "pubsub"
    pubsub_name = pubsub_name or ps
    check(ps == pubsub_name, f"{name}: PUBSUB_NAME {ps} differs from the other services'")
    comp = components.get(ps)
    check(comp and name in comp.get("scopes", [name]), f"{name}: pub/sub component {ps} missing or not scoped to it")
    # Database: exactly the services whose code reads DatabaseConfig.
    url = env_value(env, "DATABASE_URL")
    if info.get("db"):
        if check(url, f"{name}: needs DATABASE_URL (its code reads DatabaseConfig)"):
            check("$(" not in url, f"{name}: DATABASE_URL has an unresolved $(VAR): {url}")
            u = urlparse(url)
            check(u.scheme in ("postgres", "postgresql"), f"{name}: DATABASE_URL is not a postgres:// URL")
            info["db_url"] = u
            info["db_password_ref"] = (env.get("DB_PASSWORD") or {}).get("valueFrom", {}).get("secretKeyRef")
    else:
        check(url is None, f"{name}: sets DATABASE_URL but its code has no database")
    auth_vars = [v for v in ("JWT_SECRET", "JWKS_URL", "JWKS_FILE") if env_value(env, v)]
    if info.get("auth"):
        check(auth_vars, f"{name}: needs JWT_SECRET, JWKS_URL or JWKS_FILE (its code reads AuthConfig)")
    else:
        check(not auth_vars and not env_value(env, "JWT_ISSUER"), f"{name}: sets JWT settings but has no public API")
    watch = env_value(env, "WATCH_PUBSUB_NAME")
    if info.get("watch"):
        wc = components.get(watch)
        if check(watch and wc, f"{name}: WATCH_PUBSUB_NAME {watch!r} is not a rendered Component"):
            md = {m["name"]: str(m.get("value")) for m in wc["spec"].get("metadata", [])}
            check(wc["spec"]["type"] == "pubsub.kafka", f"{watch}: not pubsub.kafka")
            check("{podName}" in md.get("consumerGroup", ""),
                  f"{watch}: consumerGroup must be per pod ({{podName}}) so every replica sees every event")
            check(md.get("initialOffset") == "newest", f"{watch}: initialOffset must be newest (live streams only)")
            check(wc.get("scopes") == [name], f"{watch}: must be scoped to {name} only")
    else:
        check(watch is None, f"{name}: sets WATCH_PUBSUB_NAME but its code does not read it")
    otlp = env_value(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if check(otlp, f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT not set"):
        u = urlparse(otlp)
        check(u.scheme == "http" and u.port, f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT {otlp} is not http://host:port")
        resolve_host_port(u.hostname, u.port, f"{name} OTEL_EXPORTER_OTLP_ENDPOINT")
        check(u.port == 4317, f"{name}: OTLP endpoint must be the gRPC port 4317")
    check(env_value(env, "LOG_FORMAT") == "json", f"{name}: LOG_FORMAT must be json in the cluster")
    # Service for the app port.
    s = services_k8s.get(name)
    if check(s, f"no Service {name}"):
        check(labels_match(s["spec"]["selector"], labels), f"Service {name} does not select the {name} pods")
        check([p["port"] for p in s["spec"]["ports"]] == [port], f"Service {name} must expose exactly {port}")
    # Replicas > 1 need a PodDisruptionBudget.
    if d["spec"].get("replicas", 1) > 1:
        pdbs = [p for p in of_kind("PodDisruptionBudget").values()
                if labels_match(p["spec"]["selector"]["matchLabels"], labels)]
        if check(pdbs, f"{name}: {d['spec']['replicas']} replicas but no PodDisruptionBudget"):
            p = pdbs[0]["spec"]
            check(("minAvailable" in p and int(p["minAvailable"]) < d["spec"]["replicas"]) or "maxUnavailable" in p,
                  f"{name}: PodDisruptionBudget would block every eviction")

# ------------------------------------------------------- Dapr resources
def md(component):
    return {m["name"]: str(m.get("value")) for m in component["spec"].get("metadata", [])}


pub = components.get(pubsub_name or "pubsub")
if check(pub, "no `pubsub` Component"):
    m = md(pub)
    check(pub["spec"]["type"] == "pubsub.kafka", "pubsub: type must be pubsub.kafka")
    check(m.get("consumerGroup") == "{appID}", "pubsub: consumerGroup must be {appID} (one group per app id)")
    check(m.get("initialOffset") == "oldest", "pubsub: initialOffset must be oldest (dapr/dapr#7799)")
    check(m.get("authType") == "none" and m.get("disableTls") == "true",
          "pubsub: the in-cluster Kafka listener is PLAINTEXT: authType none, disableTls true")
    check(sorted(pub.get("scopes", [])) == sorted(SERVICES), "pubsub: scopes must be exactly the five app ids")
    check(int(m.get("maxMessageBytes", "0")) >= 1048576, "pubsub: maxMessageBytes below the broker's 1 MiB")
for cname, comp in components.items():
    if comp["spec"]["type"] == "pubsub.kafka":
        for b in md(comp).get("brokers", "").split(","):
            host, _, port = b.strip().rpartition(":")
            resolve_host_port(host, port, f"Component {cname} brokers")
    for app in comp.get("scopes", []):
        check(app in SERVICES, f"Component {cname}: scope {app} is not an app id")

tracing = configurations.get("tracing")
if check(tracing, "no Configuration `tracing`"):
    t = tracing["spec"].get("tracing", {})
    check(str(t.get("samplingRate")) == "1", "tracing: samplingRate must be \"1\"")
    otel = t.get("otel", {})
    host, _, port = str(otel.get("endpointAddress", "")).rpartition(":")
    check("://" not in host, "tracing: otel.endpointAddress is host:port without a scheme")
    resolve_host_port(host, port, "Configuration tracing otel.endpointAddress")
    check(port == "4317" and otel.get("protocol") == "grpc" and otel.get("isSecure") is False,
          "tracing: OTLP over plain gRPC to port 4317 expected")


def seconds(duration):
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(duration)):
        total += float(value) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


if check(len(resiliencies) == 1, f"expected one Resiliency, found {sorted(resiliencies)}"):
    res = next(iter(resiliencies.values()))
    check(sorted(res.get("scopes", [])) == sorted(SERVICES), "Resiliency: scopes must be the five app ids")
    pol = res["spec"]["policies"]
    for cname, target in res["spec"]["targets"].get("components", {}).items():
        check(cname in components, f"Resiliency: target {cname} is not a rendered Component")
        for direction, refs in target.items():
            for kind, ref in refs.items():
                group = {"timeout": "timeouts", "retry": "retries", "circuitBreaker": "circuitBreakers"}[kind]
                check(ref in pol.get(group, {}), f"Resiliency: {cname}.{direction}.{kind} refers to unknown {group}.{ref}")
    t = res["spec"]["targets"]["components"].get(pubsub_name or "pubsub", {})
    inbound = t.get("inbound", {})
    r = pol.get("retries", {}).get(inbound.get("retry"), {})
    check(r.get("policy") == "exponential", "Resiliency: pubsub inbound retry must be exponential")
    check(0 < int(r.get("maxRetries", -1)) <= 100,
          "Resiliency: pubsub inbound maxRetries must be bounded (a message is dead-lettered when they run out)")
    check(0 < seconds(r.get("maxInterval", "60s")) <= 60, "Resiliency: pubsub inbound maxInterval must be at most 60s")
    check(inbound.get("timeout") in pol.get("timeouts", {}), "Resiliency: pubsub inbound needs a timeout")
    check(t.get("outbound", {}).get("circuitBreaker") in pol.get("circuitBreakers", {}),
          "Resiliency: pubsub outbound needs a circuit breaker")
    local_res = [d for d in load_all(ROOT / "dapr/local/resiliency.yaml") if d.get("kind") == "Resiliency"]
    check(local_res and local_res[0]["spec"] == res["spec"],
          "dapr/local/resiliency.yaml spec differs from dapr/components/resiliency.yaml")

# ------------------------------------------------------------- Kafka
kafka = of_kind("StatefulSet").get("kafka")
if check(kafka, "no StatefulSet kafka"):
    c = kafka["spec"]["template"]["spec"]["containers"][0]
    env = container_env(kafka["spec"]["template"]["spec"], c)
    roles = env_value(env, "KAFKA_PROCESS_ROLES") or ""
    check({"broker", "controller"} <= set(roles.split(",")), "kafka: must run in KRaft mode (process.roles broker,controller)")
    check(not any(k.startswith("KAFKA_ZOOKEEPER") for k in env), "kafka: ZooKeeper settings found; this is KRaft")
    check(kafka["spec"]["template"]["spec"].get("enableServiceLinks") is False,
          "kafka: enableServiceLinks must be false (the image turns KAFKA_* service-link variables into broker properties)")
    check(env_value(env, "KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false", "kafka: topic auto-creation must be off")
    for listener in (env_value(env, "KAFKA_ADVERTISED_LISTENERS") or "").split(","):
        host, _, port = listener.split("://", 1)[-1].rpartition(":")
        resolve_host_port(host, port, "kafka advertised listener")

job = of_kind("Job").get("kafka-topics")
if check(job, "no Job kafka-topics"):
    c = job["spec"]["template"]["spec"]["containers"][0]
    script = "\n".join(c.get("command", []) + c.get("args", []))
    created = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*create\s+(\S+)\s+(\d+)", script, re.M)}
    check("--if-not-exists" in script, "kafka-topics: must use --if-not-exists (idempotent)")
    for topic in TOPICS:
        check(created.get(topic, 0) >= 2, f"kafka-topics: {topic} not created with several partitions (got {created.get(topic)})")
    for topic in DLQS:
        check(created.get(topic, 0) >= 1, f"kafka-topics: dead-letter topic {topic} not created")
    extra = sorted(set(created) - set(TOPICS + DLQS))
    check(not extra, f"kafka-topics: topics no service uses: {extra}")
    env = container_env(job["spec"]["template"]["spec"], c)
    host, _, port = (env_value(env, "BOOTSTRAP") or "").rpartition(":")
    resolve_host_port(host, port, "kafka-topics BOOTSTRAP")

# ------------------------------------------------------------- PostgreSQL
pg = of_kind("StatefulSet").get("postgres")
if check(pg, "no StatefulSet postgres"):
    pspec = pg["spec"]["template"]["spec"]
    c = pspec["containers"][0]
    env = container_env(pspec, c)
    dbname = env_value(env, "POSTGRES_DB")
    init_mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/docker-entrypoint-initdb.d"]
    init_vol = init_mounts and next((v for v in pspec.get("volumes", []) if v["name"] == init_mounts[0]["name"]), None)
    init_sql = ""
    if check(init_vol and "configMap" in init_vol, "postgres: no init script ConfigMap mounted at /docker-entrypoint-initdb.d"):
        init_sql = "\n".join(configmaps.get(init_vol["configMap"]["name"], {}).values())
    owner = {s: r for s, r in re.findall(r"CREATE SCHEMA (\w+) AUTHORIZATION (\w+)", init_sql)}
    role_pw_var = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD :'(\w+)'", init_sql))
    psql_vars = dict(re.findall(r'-v (\w+)="\$(\w+)"', init_sql))
    granted = set()
    for roles in re.findall(r"GRANT CONNECT ON DATABASE \S+ TO ([\w, ]+);", init_sql):
        granted |= {r.strip() for r in roles.split(",")}
    for name, info in code.items():
        if not info.get("db"):
            continue
        schema = info["schema"]
        role = owner.get(schema)
        if not check(role, f"postgres init: no schema {schema} owned by a role (for {name})"):
            continue
        check(role in granted,
              f"postgres init: {role} needs CONNECT on the database")
        check(not re.search(rf"GRANT [^;]*CREATE[^;]* ON DATABASE[^;]*\b{role}\b", init_sql),
              f"postgres init: {role} must not get CREATE on the database (its schema is pre-created)")
        others = [s for s, r in owner.items() if r == role and s != schema]
        check(not others, f"postgres init: role {role} owns more than its schema: {others}")
        u = info.get("db_url")
        if u:
            check(u.username == role, f"{name}: DATABASE_URL user {u.username} != {role}, the owner of schema {schema}")
            check(u.path.lstrip("/") == dbname, f"{name}: DATABASE_URL database {u.path} != POSTGRES_DB {dbname}")
            resolve_host_port(u.hostname, u.port or 5432, f"{name} DATABASE_URL")
            # The password the service presents is the one the role was created with.
            env_var = psql_vars.get(role_pw_var.get(role, ""), "")
            pg_ref = (env.get(env_var) or {}).get("valueFrom", {}).get("secretKeyRef")
            check(pg_ref and pg_ref == info.get("db_password_ref"),
                  f"{name}: DB password Secret key {info.get('db_password_ref')} != the one postgres creates role {role} with ({pg_ref})")

# ------------------------------------------------------------- Jaeger
jaeger = deployments.get("jaeger")
if check(jaeger, "no Deployment jaeger"):
    env = container_env(jaeger["spec"]["template"]["spec"], jaeger["spec"]["template"]["spec"]["containers"][0])
    # config.yaml (shared with the local real runtime) listens on loopback
    # unless these say otherwise: spans and probes come from other pods.
    for var in ("JAEGER_OTLP_GRPC", "JAEGER_QUERY_HTTP", "JAEGER_HEALTH"):
        check((env_value(env, var) or "").startswith("0.0.0.0:"), f"jaeger: {var} must listen on every interface")
    check(any(p["port"] == 16686 for s in services_k8s.values()
              if labels_match(s["spec"]["selector"], jaeger["spec"]["template"]["metadata"]["labels"])
              for p in s["spec"]["ports"]), "jaeger: no Service exposes the UI port 16686")
    check("jaeger-query" in services_k8s, "jaeger: deploy.sh and the docs port-forward svc/jaeger-query")

# ------------------------------------------------------- dapr/dev.yaml
run_file = ROOT / "dapr/dev.yaml"
run = yaml.safe_load(run_file.read_text())
base_dir = run_file.parent
common = run.get("common", {}) or {}
check(run.get("version") == 1, "dev.yaml: version must be 1")
apps = {a.get("appID"): a for a in run.get("apps", [])}
all_ports = []
for name, (port, grpc_port, http_port) in SERVICES.items():
    a = apps[name]
    check(all(isinstance(p, int) for p in (port, grpc_port, http_port)),
          f"dev.yaml {name}: appPort, daprGRPCPort and daprHTTPPort are required")
    all_ports += [port, grpc_port, http_port]
    proto = str(a.get("appProtocol", common.get("appProtocol", ""))).lower()
    check(proto == "grpc", f"dev.yaml {name}: appProtocol must be grpc")
    app_dir = (base_dir / a.get("appDirPath", "")).resolve()
    check(app_dir == ROOT.resolve(), f"dev.yaml {name}: appDirPath resolves to {app_dir}, not the repository root")
    check(a.get("command") == [f"target/debug/{name}"], f"dev.yaml {name}: command must be [\"target/debug/{name}\"]")
    env = {**(common.get("env") or {}), **(a.get("env") or {})}
    info = code.get(name, {})
    check(("DATABASE_URL" in env) == bool(info.get("db")), f"dev.yaml {name}: DATABASE_URL set iff the service has a database")
    if info.get("auth"):
        check(env.get("JWT_SECRET") == "dev-secret-change-me", f"dev.yaml {name}: JWT_SECRET must be the dev secret")
        check(str(env.get("DEV_MODE")).lower() == "true",
              f"dev.yaml {name}: DEV_MODE must be true (services refuse the dev secret without it)")
check(len(all_ports) == len(set(all_ports)), "dev.yaml: ports collide")
paths = common.get("resourcesPaths") or ([common["resourcesPath"]] if common.get("resourcesPath") else [])
local_docs = []
for p in paths:
    d = (base_dir / p)
    if check(d.is_dir(), f"dev.yaml: resources path {p} does not exist (relative to dapr/)"):
        for f in sorted(d.glob("*.yaml")):
            local_docs += load_all(f)
check(any(x.get("kind") == "Component" and x["metadata"]["name"] == (pubsub_name or "pubsub")
          and x["spec"]["type"].startswith("pubsub.") for x in local_docs),
      "dev.yaml: local resources have no pub/sub component named pubsub")
check(not any(x.get("kind") == "Subscription" for x in local_docs), "dapr/local: declarative Subscription found")
cfg = common.get("configFilePath")
if check(cfg and (base_dir / cfg).is_file(), "dev.yaml: configFilePath missing"):
    c = yaml.safe_load((base_dir / cfg).read_text())
    check(c.get("kind") == "Configuration" and "tracing" in c.get("spec", {}), "dev.yaml: configFilePath is not a tracing Configuration")

# ------------------------------------------------ Dockerfile, scripts
dockerfile = text("Dockerfile")
check("ls services > services.txt" in dockerfile, "Dockerfile: the services it builds are no longer every folder under services/")
# Found by building it: the dependencies must be cooked for exactly the
# packages built, or every source change compiles dozens of them again.
check(dockerfile.count("$(sed 's/^/-p /' services.txt)") == 2,
      "Dockerfile: cargo chef cook and cargo build must name the same packages (services.txt)")
for dev in DEV_ONLY:
    check(f"-p {dev}" not in dockerfile, f"Dockerfile builds {dev}, which is development-only")
check("ARG SERVICE" in dockerfile, "Dockerfile: no SERVICE build argument")
ignored = [l.strip().rstrip("/") for l in text(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
for needed in ("Cargo.toml", "Cargo.lock", "build.rs", "proto", "src", "services", "services/task-api/migrations"):
    check(needed not in ignored and not any(Path(needed).match(i) for i in ignored),
          f".dockerignore excludes {needed}, which the build needs")
check("mapfile -t SERVICES < <(ls services)" in text("scripts/deploy.sh"),
      "scripts/deploy.sh: SERVICES is no longer every folder under services/")

# ------------------------------------------------------------- report
if errors:
    for e in errors:
        print(f"FAIL {e}")
    print(f"check-k8s: {len(errors)} problem(s), {count} checks")
    sys.exit(1)
print(f"check-k8s: {count} checks passed ({len(rendered)} rendered resources, Kubernetes schemas {K8S_VERSION})")

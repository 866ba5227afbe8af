// Offline validation of deploy/: renders base/ and every overlay with
// kustomize-lite.mjs and checks each resource
//   1. against the Kubernetes OpenAPI schemas (kubernetes-models) or the
//      Prometheus Operator CRD schemas (@kubernetes-models/prometheus-operator);
//   2. for unknown fields: kubernetes-models ignores fields its schema does not
//      name, so every field is probed by replacing its value with one no
//      schema accepts; a field whose probe passes is unknown (a typo, or a
//      field the API server would drop);
//   3. against cross-resource wiring (selectors, ports, volumes, probes,
//      files named by flags) and the deployment conventions (labels,
//      non-root, resources);
//   4. for transport security and access control: every oubli server that
//      listens beyond loopback serves TLS (the coordinator with an access
//      policy, workers with mutual TLS), never --insecure, and probes that
//      can speak TLS; /metrics beyond loopback is HTTPS (--metrics_tls), and
//      every ServiceMonitor endpoint scrapes it with https, verifying the
//      server (a CA, serverName, no insecureSkipVerify) against the TLS
//      Secret of the pods it scrapes;
// and checks that the PrometheusRule embeds deploy/prometheus/oubli-rules.yaml.
// The overlays are also rendered with the optional cert-manager component
// (deploy/components/cert-manager), whose Certificates must produce every
// TLS Secret the pods mount, with the names the binaries check.
//
//   node tests/deploy/validate-manifests.mjs --modules=NODE_MODULES --source=REPO
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { isDeepStrictEqual } from "node:util";
import { render, loadYamlLib } from "./kustomize-lite.mjs";

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = a.match(/^--([^=]+)=(.*)$/);
  if (!m) { console.error(`bad argument ${a}`); process.exit(2); }
  return [m[1], m[2]];
}));
const modules = path.resolve(args.modules ?? path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules"));
const source = path.resolve(args.source ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../.."));
const require = createRequire(path.join(modules, "noop.js"));
const yaml = loadYamlLib(modules);

const MODELS = {
  "v1/Namespace": () => require("kubernetes-models/v1/Namespace").Namespace,
  "v1/ConfigMap": () => require("kubernetes-models/v1/ConfigMap").ConfigMap,
  "v1/Service": () => require("kubernetes-models/v1/Service").Service,
  "apps/v1/StatefulSet": () => require("kubernetes-models/apps/v1/StatefulSet").StatefulSet,
  "policy/v1/PodDisruptionBudget": () => require("kubernetes-models/policy/v1/PodDisruptionBudget").PodDisruptionBudget,
  "monitoring.coreos.com/v1/ServiceMonitor": () =>
    require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor").ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": () =>
    require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule").PrometheusRule,
  "cert-manager.io/v1/Issuer": () => require("@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer").Issuer,
  "cert-manager.io/v1/Certificate": () =>
    require("@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate").Certificate,
};

// Secrets the operator creates (the README says how); every other Secret a
// pod mounts must come from the cert-manager component when it is used.
const OPERATOR_SECRETS = new Set(["oubli-api-tokens"]);
// What cert-manager writes into a Certificate's Secret.
const CERT_MANAGER_KEYS = new Set(["tls.crt", "tls.key", "ca.crt"]);
// Flags whose value is a file the container reads.
const FILE_FLAGS = ["flagfile", "tls_cert", "tls_key", "tls_client_ca", "tls_peer_ca", "policy_file", "token_file", "cluster_token_file"];
// Flags whose value is a path the container writes.
const WRITTEN_FLAGS = ["data_dir", "audit_log"];
// The names the binaries check in each other's certificates, by default
// (coordinator/main.cc --tls_worker_name, worker/main.cc
// --tls_coordinator_name).
const DEFAULT_TLS_WORKER_NAME = "oubli-worker";
const DEFAULT_TLS_COORDINATOR_NAME = "oubli-coordinator";
// --metrics_listen by default (coordinator/main.cc, worker/main.cc; empty:
// no metrics).
const DEFAULT_METRICS_LISTEN = { "oubli-coordinator": "127.0.0.1:9464", "oubli-worker": "" };
// Boolean flags, which absl also accepts as --noNAME.
const BOOL_FLAGS = new Set(["insecure", "metrics_tls", "predict_on_workers"]);

// Free-form maps: any key is valid, so unknown-field probing stops here.
const FREE_FORM = [
  /^\/metadata\/(labels|annotations)$/,
  /\/template\/metadata\/(labels|annotations)$/,
  /\/volumeClaimTemplates\/\d+\/metadata\/(labels|annotations)$/,
  /\/(matchLabels|nodeSelector)$/,
  /^\/spec\/selector$/, // Service selector (map)
  /^\/data$/,
  /\/resources\/(requests|limits)$/,
];

const RECOMMENDED_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"];

let failures = 0;
function problem(where, message) {
  failures++;
  console.log(`FAIL ${where}: ${message}`);
}

function validateSchema(resource) {
  const key = `${resource.apiVersion}/${resource.kind}`;
  const Model = MODELS[key]?.();
  if (!Model) return `no schema for ${key} (add it to MODELS)`;
  try {
    new Model(structuredClone(resource)).validate();
    return null;
  } catch (e) {
    return e.message;
  }
}

// Replaces the value at each object key with one of another JSON type (a
// fractional number for objects and arrays, an object for scalars) and
// reports keys whose replacement still validates.
function unknownFields(resource) {
  const Model = MODELS[`${resource.apiVersion}/${resource.kind}`]();
  const unknown = [];
  function walk(node, pointer) {
    if (FREE_FORM.some((re) => re.test(pointer))) return;
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${pointer}/${i}`));
    } else if (node !== null && typeof node === "object") {
      for (const key of Object.keys(node)) {
        if (pointer === "" && (key === "apiVersion" || key === "kind")) continue;
        const saved = node[key];
        node[key] = saved !== null && typeof saved === "object" ? 0.5 : { probe: {} };
        let accepted = false;
        try {
          new Model(copy).validate();
          accepted = true;
        } catch { /* expected: the schema knows this field */ }
        node[key] = saved;
        if (accepted) unknown.push(`${pointer}/${key}`);
        else walk(saved, `${pointer}/${key}`);
      }
    }
  }
  const copy = structuredClone(resource);
  walk(copy, "");
  return unknown;
}

function matches(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

function podSpecs(resources) {
  return resources.filter((r) => r.kind === "StatefulSet" || r.kind === "Deployment")
    .map((r) => ({ workload: r, labels: r.spec.template.metadata?.labels ?? {}, pod: r.spec.template.spec }));
}

function configMapHasKey(configMaps, name, key) {
  return configMaps.find((x) => x.metadata.name === name)?.data?.[key] !== undefined;
}

// The volume mount holding `file` (the mount point itself when `directory`),
// its volume and the file's path inside it; null when none does.
function mountedFile(container, volumes, file, directory = false) {
  const mount = (container.volumeMounts ?? [])
    .filter((vm) => file.startsWith(vm.mountPath + "/") || (directory && file === vm.mountPath))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return null;
  return { mount, volume: volumes.get(mount.name) ?? {}, key: file.slice(mount.mountPath.length + 1) };
}

// The flags a container runs with: its args in order, --flagfile expanded in
// place from its ConfigMap (later flags override earlier ones, as in absl).
function containerFlags(container, volumes, configMaps, report) {
  const flags = new Map();
  const add = (arg) => {
    const m = arg.match(/^--?([A-Za-z0-9_]+)(?:=(.*))?$/);
    if (!m) return;
    const [, name, value] = m;
    if (value === undefined && name.startsWith("no") && BOOL_FLAGS.has(name.slice(2))) { flags.set(name.slice(2), "false"); return; }
    if (name !== "flagfile") { flags.set(name, value ?? "true"); return; }
    flags.set(name, value);
    const where = mountedFile(container, volumes, value ?? "");
    const data = where?.volume.configMap && configMaps.find((x) => x.metadata.name === where.volume.configMap.name)?.data;
    if (!data || data[where.key] === undefined) { report(`--flagfile ${value} is not a key of a mounted ConfigMap`); return; }
    for (const line of data[where.key].split("\n")) {
      if (line.trim() && !line.trim().startsWith("#")) add(line.trim());
    }
  };
  for (const a of container.args ?? []) add(a);
  return flags;
}

const isLoopback = (listen) => /^(127\.[0-9.]+|localhost|\[::1\]):/.test(listen ?? "");
// absl's spellings of a true bool flag.
const isTrue = (value) => /^(true|t|yes|y|1)$/i.test(value ?? "");
const oubliBinary = (c) => {
  const binary = (c.command ?? [])[0];
  return binary === "oubli-coordinator" || binary === "oubli-worker" ? binary : null;
};
// Where an oubli binary serves /metrics (empty: nowhere) and whether over
// HTTPS.
function metricsServing(binary, flags) {
  return { listen: flags.get("metrics_listen") ?? DEFAULT_METRICS_LISTEN[binary], tls: isTrue(flags.get("metrics_tls")) };
}

// TLS on by default: an oubli server reachable from other pods serves TLS
// (workers: mutual TLS; the coordinator: with an access policy), /metrics
// too (HTTPS), and nobody opts out with --insecure.
function checkServerSecurity(cw, c, flags) {
  const binary = oubliBinary(c);
  if (!binary) return;
  if (isTrue(flags.get("insecure"))) problem(cw, `${binary} runs with --insecure`);
  const metrics = metricsServing(binary, flags);
  if (metrics.listen && !isLoopback(metrics.listen) && !metrics.tls) {
    problem(cw, `${binary} serves /metrics on ${metrics.listen} in plaintext: add --metrics_tls`);
  }
  if (metrics.tls && !(flags.get("tls_cert") && flags.get("tls_key"))) {
    problem(cw, `${binary} runs with --metrics_tls but without --tls_cert and --tls_key (it exits at startup)`);
  }
  if (isLoopback(flags.get("listen") ?? (binary === "oubli-coordinator" ? "127.0.0.1:50051" : "127.0.0.1:0"))) return;
  for (const f of ["tls_cert", "tls_key", "tls_client_ca"]) {
    if (!flags.get(f)) problem(cw, `${binary} listens on ${flags.get("listen")} without --${f}`);
  }
  if (binary === "oubli-coordinator") {
    if (!flags.get("policy_file")) problem(cw, "oubli-coordinator serves the API without --policy_file");
    if (!flags.get("audit_log")) problem(cw, "oubli-coordinator keeps no --audit_log");
  }
}

function checkWiring(name, resources) {
  const where = (r) => `${name}: ${r.kind}/${r.metadata?.name}`;
  const pods = podSpecs(resources);
  const byKind = (kind) => resources.filter((r) => r.kind === kind);

  for (const r of resources) {
    for (const l of RECOMMENDED_LABELS) {
      if (!r.metadata?.labels?.[l]) problem(where(r), `missing label ${l}`);
    }
    if (r.kind !== "Namespace" && r.metadata?.namespace !== "oubli") {
      problem(where(r), `namespace ${r.metadata?.namespace}, expected oubli`);
    }
  }

  for (const { workload, labels, pod } of pods) {
    const w = where(workload);
    if (!matches(workload.spec.selector?.matchLabels, labels)) problem(w, "selector does not match the pod template labels");
    for (const l of ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"]) {
      if (!labels[l]) problem(w, `pod template lacks label ${l}`);
    }
    if (workload.kind === "StatefulSet") {
      const svc = byKind("Service").find((s) => s.metadata.name === workload.spec.serviceName);
      if (!svc) problem(w, `serviceName ${workload.spec.serviceName} names no Service`);
      else if (svc.spec.clusterIP !== "None") problem(w, `governing Service ${svc.metadata.name} is not headless`);
      else if (!matches(svc.spec.selector, labels)) problem(w, `governing Service ${svc.metadata.name} does not select these pods`);
    }
    const psc = pod.securityContext ?? {};
    if (psc.runAsNonRoot !== true) problem(w, "pod securityContext.runAsNonRoot is not true");
    if (!(psc.runAsUser > 0)) problem(w, "pod securityContext.runAsUser is not a non-root uid");
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const t of workload.spec.volumeClaimTemplates ?? []) volumes.set(t.metadata.name, { pvc: t });
    for (const v of pod.volumes ?? []) {
      if (v.configMap && !byKind("ConfigMap").some((c) => c.metadata.name === v.configMap.name)) {
        problem(w, `volume ${v.name} uses missing ConfigMap ${v.configMap.name}`);
      }
    }
    for (const c of pod.containers) {
      const cw = `${w} container ${c.name}`;
      if (!c.image || !/:[^/]+$/.test(c.image) || /:latest$/.test(c.image)) problem(cw, `image ${c.image} has no pinned tag`);
      const csc = c.securityContext ?? {};
      if (csc.allowPrivilegeEscalation !== false) problem(cw, "allowPrivilegeEscalation is not false");
      if (!csc.capabilities?.drop?.includes("ALL")) problem(cw, "capabilities do not drop ALL");
      for (const kind of ["requests", "limits"]) {
        for (const res of ["cpu", "memory"]) {
          if (!c.resources?.[kind]?.[res]) problem(cw, `no resources.${kind}.${res}`);
        }
      }
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name)) problem(cw, `volumeMount ${m.name} names no volume`);
      }
      const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
      const portNumbers = new Set(ports.values());
      const flags = containerFlags(c, volumes, byKind("ConfigMap"), (m) => problem(cw, m));
      const servesTls = Boolean(flags.get("tls_cert"));
      for (const probeName of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const probe = c[probeName];
        if (!probe) { problem(cw, `no ${probeName}`); continue; }
        if (probe.grpc) {
          // The kubelet's gRPC probe is plaintext: against a TLS port it
          // fails the handshake, and the pod never becomes ready.
          if (servesTls) problem(cw, `${probeName} is a native gRPC probe, which cannot speak TLS, but the container serves TLS`);
          if (!portNumbers.has(probe.grpc.port)) problem(cw, `${probeName} port ${probe.grpc.port} is not a container port`);
        } else if (probe.exec) {
          const command = probe.exec.command ?? [];
          if (command.length === 0) problem(cw, `${probeName} has an empty exec command`);
          if (!((probe.timeoutSeconds ?? 1) >= 2)) problem(cw, `${probeName} runs a command with a ${probe.timeoutSeconds ?? 1} s timeout`);
          // Scripts from a ConfigMap must be keys of it.
          for (const arg of command.filter((x) => x.startsWith("/"))) {
            const where = mountedFile(c, volumes, arg);
            if (where?.volume.configMap && !configMapHasKey(byKind("ConfigMap"), where.volume.configMap.name, where.key)) {
              problem(cw, `${probeName} runs ${arg}, which is not a key of ConfigMap ${where.volume.configMap.name}`);
            }
          }
        } else {
          problem(cw, `${probeName} is neither a gRPC nor an exec probe (the gRPC port is the health check)`);
        }
      }
      for (const name of FILE_FLAGS) {
        const file = flags.get(name);
        if (!file) continue;
        const where = mountedFile(c, volumes, file);
        if (!where) { problem(cw, `--${name}=${file} is on no volume mount`); continue; }
        if (where.volume.configMap && !configMapHasKey(byKind("ConfigMap"), where.volume.configMap.name, where.key)) {
          problem(cw, `--${name}=${file} is not a key of ConfigMap ${where.volume.configMap.name}`);
        }
        if (where.volume.secret) {
          if (where.volume.secret.items) problem(cw, `Secret volume ${where.mount.name}: items are not checked here; mount whole Secrets`);
          if (where.mount.subPath) problem(cw, `--${name}=${file}: a subPath mount never sees renewed files`);
        }
      }
      for (const name of WRITTEN_FLAGS) {
        const file = flags.get(name);
        if (!file) continue;
        const where = mountedFile(c, volumes, file, /*directory=*/ name === "data_dir");
        if (!where) problem(cw, `--${name}=${file} is on no volume mount (the root filesystem is read-only)`);
        else if (where.mount.readOnly || where.volume.configMap || where.volume.secret) problem(cw, `--${name}=${file} is on a read-only mount`);
      }
      checkServerSecurity(cw, c, flags);
    }
  }

  for (const svc of byKind("Service")) {
    const targets = pods.filter((p) => matches(svc.spec.selector, p.labels));
    if (targets.length !== 1) { problem(where(svc), `selects ${targets.length} workloads, expected 1`); continue; }
    const names = new Set(targets[0].pod.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
    for (const p of svc.spec.ports ?? []) {
      if (typeof p.targetPort === "string" && !names.has(p.targetPort)) problem(where(svc), `targetPort ${p.targetPort} is no container port name`);
    }
  }

  for (const pdb of byKind("PodDisruptionBudget")) {
    if (!pods.some((p) => matches(pdb.spec.selector?.matchLabels, p.labels))) problem(where(pdb), "selects no pods");
  }

  for (const sm of byKind("ServiceMonitor")) {
    const svcs = byKind("Service").filter((s) => matches(sm.spec.selector?.matchLabels, s.metadata.labels));
    for (const ep of sm.spec.endpoints) {
      const withPort = svcs.filter((s) => s.spec.ports.some((p) => p.name === ep.port));
      if (withPort.length !== 1) problem(where(sm), `endpoint port ${ep.port} is on ${withPort.length} selected Services, expected 1`);
      checkScrapeSecurity(`${where(sm)} endpoint port ${ep.port}`, ep, scrapedContainers(resources, sm, ep));
    }
  }
}

// The containers behind ServiceMonitor endpoint `ep`: the pods of the
// selected Services that have its port, through the Service's targetPort.
function scrapedContainers(resources, sm, ep) {
  const configMaps = resources.filter((r) => r.kind === "ConfigMap");
  const out = [];
  for (const svc of resources.filter((r) => r.kind === "Service" && matches(sm.spec.selector?.matchLabels, r.metadata.labels))) {
    const port = (svc.spec.ports ?? []).find((p) => p.name === ep.port);
    if (!port) continue;
    const target = port.targetPort ?? port.port;
    for (const { workload, labels, pod } of podSpecs(resources)) {
      if (!matches(svc.spec.selector, labels)) continue;
      const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
      for (const c of pod.containers) {
        const cp = (c.ports ?? []).find((p) => (typeof target === "string" ? p.name === target : p.containerPort === target));
        if (!cp) continue;
        const flags = containerFlags(c, volumes, configMaps, () => {});
        const cert = flags.get("tls_cert") && mountedFile(c, volumes, flags.get("tls_cert"));
        out.push({ who: `${workload.metadata.name}/${c.name}`, container: c, flags, containerPort: cp.containerPort, tlsSecret: cert?.volume.secret?.secretName });
      }
    }
  }
  return out;
}

// A scrape of oubli's /metrics is HTTPS and verifies the server: a CA (the
// ca.crt of the scraped pods' own TLS Secret) and serverName (targets are
// pod IPs, which the certificates do not carry), never insecureSkipVerify;
// and it reaches the container's --metrics_listen port, served with
// --metrics_tls.
function checkScrapeSecurity(where, ep, scraped) {
  const tls = ep.tlsConfig ?? {};
  if (ep.scheme !== "https") problem(where, `scheme is ${ep.scheme ?? "http (the default)"}, not https`);
  if (tls.insecureSkipVerify) problem(where, "tlsConfig.insecureSkipVerify: the server is not verified");
  const ca = tls.ca?.secret ?? tls.ca?.configMap ?? (tls.caFile ? { file: tls.caFile } : null);
  if (!ca) problem(where, "no tlsConfig.ca to verify the server with");
  if (!tls.serverName) problem(where, "no tlsConfig.serverName (targets are pod IPs, which the certificates do not name)");
  for (const { who, container, flags, containerPort, tlsSecret } of scraped) {
    const binary = oubliBinary(container);
    if (!binary) continue;
    const metrics = metricsServing(binary, flags);
    const port = Number(metrics.listen.match(/:(\d+)$/)?.[1]);
    if (!metrics.listen) problem(where, `${who} serves no /metrics (no --metrics_listen)`);
    else if (port !== containerPort) problem(where, `targets container port ${containerPort} of ${who}, whose --metrics_listen is ${metrics.listen}`);
    if (ep.scheme === "https" && !metrics.tls) problem(where, `scraped over https, but ${who} serves /metrics without --metrics_tls`);
    if (tls.ca?.secret && (tls.ca.secret.name !== tlsSecret || tls.ca.secret.key !== "ca.crt")) {
      problem(where, `tlsConfig.ca is ${tls.ca.secret.name}/${tls.ca.secret.key}, not ca.crt of ${who}'s TLS Secret ${tlsSecret ?? "(none)"}`);
    }
  }
}

function checkOverlaySpecifics(name, resources, gpuOverlay) {
  const ss = (n) => resources.find((r) => r.kind === "StatefulSet" && r.metadata.name === n);
  const worker = ss("oubli-worker")?.spec.template.spec;
  const coordinator = ss("oubli-coordinator")?.spec.template.spec;
  if (!worker || !coordinator) { problem(name, "coordinator or worker StatefulSet missing"); return; }
  const gpu = (pod) => pod.containers.some((c) => c.resources?.limits?.["nvidia.com/gpu"]);
  if (gpuOverlay) {
    // One numeric environment for all: the coordinator trains and predicts
    // too, and workers of another environment get no work.
    for (const [who, pod] of [["workers", worker], ["the coordinator", coordinator]]) {
      if (!gpu(pod)) problem(name, `${who} request no nvidia.com/gpu`);
      for (const c of pod.containers) {
        const r = c.resources ?? {};
        if (r.limits?.["nvidia.com/gpu"] !== r.requests?.["nvidia.com/gpu"]) problem(name, "GPU requests must equal limits");
      }
      if (!(pod.tolerations ?? []).some((t) => t.key === "nvidia.com/gpu")) problem(name, `${who} do not tolerate nvidia.com/gpu`);
      if (!pod.containers[0].image.endsWith("-cuda")) problem(name, `image ${pod.containers[0].image} of ${who} is not the GPU variant`);
      if (!(pod.containers[0].args ?? []).includes("--device=cuda")) problem(name, `${who} do not run with --device=cuda`);
    }
    // The patches repeat the base's args (lists replace): none may be lost.
    for (const [which, pod] of [["oubli-worker", worker], ["oubli-coordinator", coordinator]]) {
      const base = render(path.join(source, "deploy/base"), yaml)
        .find((r) => r.kind === "StatefulSet" && r.metadata.name === which).spec.template.spec;
      for (const arg of base.containers[0].args ?? []) {
        if (!(pod.containers[0].args ?? []).includes(arg)) problem(name, `${which} lost base arg ${arg}`);
      }
    }
  } else if (gpu(worker) || gpu(coordinator)) {
    problem(name, "GPU resources outside the gpu overlay");
  }
}

function checkRulesEmbedded(resources) {
  const rulesFile = path.join(source, "deploy/prometheus/oubli-rules.yaml");
  const plain = yaml.load(fs.readFileSync(rulesFile, "utf8"));
  const pr = resources.find((r) => r.kind === "PrometheusRule");
  if (!pr) { problem("base", "no PrometheusRule"); return; }
  if (!isDeepStrictEqual(pr.spec.groups, plain.groups)) {
    problem("base: PrometheusRule", "groups differ from deploy/prometheus/oubli-rules.yaml; run deploy/prometheus/generate-prometheusrule.sh");
  }
}

// The Secrets each pod mounts: secret name -> {who, keys: Set of files the
// container names through flags}.
function mountedSecrets(resources) {
  const out = new Map();
  for (const { workload, pod } of podSpecs(resources)) {
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const c of pod.containers) {
      const flags = containerFlags(c, volumes, resources.filter((r) => r.kind === "ConfigMap"), () => {});
      for (const m of c.volumeMounts ?? []) {
        const secret = volumes.get(m.name)?.secret?.secretName;
        if (!secret) continue;
        const entry = out.get(secret) ?? { who: new Set(), keys: new Set() };
        entry.who.add(`${workload.metadata.name}/${c.name}`);
        for (const name of FILE_FLAGS) {
          const file = flags.get(name);
          if (file?.startsWith(m.mountPath + "/")) entry.keys.add(file.slice(m.mountPath.length + 1));
        }
        out.set(secret, entry);
      }
    }
  }
  return out;
}

// The flags and TLS Secret of the first container of StatefulSet `name`.
function serverTls(resources, name) {
  const ss = resources.find((r) => r.kind === "StatefulSet" && r.metadata.name === name);
  if (!ss) return null;
  const pod = ss.spec.template.spec;
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const c = pod.containers[0];
  const flags = containerFlags(c, volumes, resources.filter((r) => r.kind === "ConfigMap"), () => {});
  const secretOf = (flag) => {
    const where = flags.get(flag) && mountedFile(c, volumes, flags.get(flag));
    return where?.volume.secret ? { secret: where.volume.secret.secretName, key: where.key } : null;
  };
  return { ss, flags, cert: secretOf("tls_cert"), clientCa: secretOf("tls_client_ca"), peerCa: secretOf("tls_peer_ca") ?? secretOf("tls_client_ca") };
}

// With the cert-manager component: its Certificates produce every TLS Secret
// the pods mount, signed by one CA, carrying the names each side checks.
function checkCertManager(name, resources) {
  const where = (r) => `${name}: ${r.kind}/${r.metadata?.name}`;
  const certificates = resources.filter((r) => r.kind === "Certificate");
  const issuers = resources.filter((r) => r.kind === "Issuer");
  const bySecret = new Map(certificates.map((c) => [c.spec.secretName, c]));
  if (certificates.length === 0) { problem(name, "no Certificate rendered"); return; }

  for (const cert of certificates) {
    const ref = cert.spec.issuerRef ?? {};
    const issuer = issuers.find((i) => i.metadata.name === ref.name);
    if ((ref.kind ?? "Issuer") !== "Issuer" || !issuer) { problem(where(cert), `issuerRef ${ref.kind}/${ref.name} is no Issuer of this rendering`); continue; }
    if (issuer.spec.ca) {
      const ca = bySecret.get(issuer.spec.ca.secretName);
      if (!ca || ca.spec.isCA !== true) problem(where(issuer), `CA Secret ${issuer.spec.ca.secretName} is made by no isCA Certificate`);
    }
    if (!cert.spec.isCA) {
      for (const usage of ["server auth", "client auth"]) {
        if (!(cert.spec.usages ?? []).includes(usage)) problem(where(cert), `usages lack "${usage}" (each side is both server and client)`);
      }
    }
  }

  for (const [secret, { who, keys }] of mountedSecrets(resources)) {
    if (OPERATOR_SECRETS.has(secret)) continue;
    if (!bySecret.has(secret)) { problem(name, `Secret ${secret} (mounted by ${[...who].join(", ")}) is made by no Certificate`); continue; }
    for (const key of keys) {
      if (!CERT_MANAGER_KEYS.has(key)) problem(name, `${[...who].join(", ")} read ${secret}/${key}, which cert-manager does not write`);
    }
  }

  const coordinator = serverTls(resources, "oubli-coordinator");
  const worker = serverTls(resources, "oubli-worker");
  if (!coordinator?.cert || !worker?.cert) { problem(name, "coordinator or worker has no --tls_cert from a Secret"); return; }
  const coordinatorCert = bySecret.get(coordinator.cert.secret);
  const workerCert = bySecret.get(worker.cert.secret);
  if (!coordinatorCert || !workerCert) return; // reported above
  const names = (cert) => new Set([...(cert.spec.dnsNames ?? []), cert.spec.commonName].filter(Boolean));
  // What each side checks in the other's certificate.
  const workerName = coordinator.flags.get("tls_worker_name") ?? DEFAULT_TLS_WORKER_NAME;
  if (!names(workerCert).has(workerName)) problem(where(workerCert), `dnsNames lack ${workerName}, which the coordinator requires of workers (--tls_worker_name)`);
  const coordinatorName = worker.flags.get("tls_coordinator_name") ?? DEFAULT_TLS_COORDINATOR_NAME;
  if (!names(coordinatorCert).has(coordinatorName)) problem(where(coordinatorCert), `dnsNames lack ${coordinatorName}, which workers require of the coordinator (--tls_coordinator_name)`);
  // Clients in the cluster dial the coordinator's Service by name.
  const pods = coordinator.ss.spec.template.metadata.labels;
  for (const svc of resources.filter((r) => r.kind === "Service" && r.spec.clusterIP !== "None" && matches(r.spec.selector, pods))) {
    const ns = svc.metadata.namespace;
    for (const dns of [svc.metadata.name, `${svc.metadata.name}.${ns}`, `${svc.metadata.name}.${ns}.svc`]) {
      if (!names(coordinatorCert).has(dns)) problem(where(coordinatorCert), `dnsNames lack ${dns} (Service ${svc.metadata.name})`);
    }
  }
  // ServiceMonitors check the name their targets' certificates carry.
  for (const sm of resources.filter((r) => r.kind === "ServiceMonitor")) {
    for (const ep of sm.spec.endpoints ?? []) {
      const serverName = ep.tlsConfig?.serverName;
      if (!serverName) continue; // reported by checkScrapeSecurity
      for (const { who, tlsSecret } of scrapedContainers(resources, sm, ep)) {
        const cert = bySecret.get(tlsSecret);
        if (cert && !names(cert).has(serverName)) {
          problem(where(sm), `endpoint port ${ep.port}: serverName ${serverName} is not a name of ${cert.metadata.name}, which ${who} serves`);
        }
      }
    }
  }
  // Both sides trust the CA that signed the other.
  const issuerOf = (cert) => cert?.spec.issuerRef?.name;
  for (const [side, tls, other] of [["oubli-coordinator", coordinator, workerCert], ["oubli-worker", worker, coordinatorCert]]) {
    for (const [flag, ca] of [["tls_client_ca", tls.clientCa], ["tls_peer_ca (or --tls_client_ca)", tls.peerCa]]) {
      if (!ca || ca.key !== "ca.crt") { problem(name, `${side} --${flag} is not the ca.crt of a Secret`); continue; }
      if (issuerOf(bySecret.get(ca.secret)) !== issuerOf(other)) {
        problem(name, `${side} --${flag} (${ca.secret}) is not the CA of ${other.metadata.name} (issuer ${issuerOf(other)})`);
      }
    }
  }
}

// Renders `overlay` with `components` added, through a temporary
// kustomization, as an overlay of the user's would.
function renderWithComponents(overlay, components) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oubli-kustomize-"));
  try {
    const rel = (p) => path.relative(dir, path.join(source, p));
    fs.writeFileSync(path.join(dir, "kustomization.yaml"), yaml.dump({
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: [rel(overlay)],
      components: components.map(rel),
    }));
    return render(dir, yaml);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const CERT_MANAGER = "deploy/components/cert-manager";
const targets = [
  { name: "base", dir: "deploy/base" },
  { name: "overlays/cpu", dir: "deploy/overlays/cpu" },
  { name: "overlays/gpu", dir: "deploy/overlays/gpu", gpu: true },
  { name: "overlays/cpu + components/cert-manager", dir: "deploy/overlays/cpu", components: [CERT_MANAGER] },
  { name: "overlays/gpu + components/cert-manager", dir: "deploy/overlays/gpu", components: [CERT_MANAGER], gpu: true },
];
for (const { name, dir, components, gpu } of targets) {
  let resources;
  try {
    resources = components ? renderWithComponents(dir, components) : render(path.join(source, dir), yaml);
  } catch (e) {
    problem(name, e.message);
    continue;
  }
  let schemaFailures = 0;
  for (const r of resources) {
    const err = validateSchema(r);
    if (err) { problem(`${name}: ${r.kind}/${r.metadata?.name}`, `schema: ${err}`); schemaFailures++; continue; }
    for (const u of unknownFields(r)) problem(`${name}: ${r.kind}/${r.metadata?.name}`, `unknown field ${u}`);
  }
  if (name === "base") {
    checkRulesEmbedded(resources);
    // The base works without cert-manager: no resource of its CRDs.
    for (const r of resources) {
      if (r.apiVersion.startsWith("cert-manager.io/")) problem(`base: ${r.kind}/${r.metadata?.name}`, "the base must not need cert-manager");
    }
  } else {
    checkWiring(name, resources);
    checkOverlaySpecifics(name, resources, gpu === true);
    if (components?.includes(CERT_MANAGER)) checkCertManager(name, resources);
  }
  console.log(`${name}: ${resources.length} resources (${resources.map((r) => r.kind).join(", ")}), ${schemaFailures} schema failures`);
  if (!components) {
    const external = [...mountedSecrets(resources).keys()];
    if (external.length > 0 && name !== "base") console.log(`  Secrets to create first (or from ${CERT_MANAGER}): ${external.join(", ")}`);
  }
}

if (failures > 0) {
  console.log(`${failures} problem(s)`);
  process.exit(1);
}
console.log("all manifests valid");

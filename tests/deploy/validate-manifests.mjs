// Offline validation of deploy/: renders base/ and every overlay with
// kustomize-lite.mjs and checks each resource
//   1. against the Kubernetes OpenAPI schemas (kubernetes-models) or the
//      Prometheus Operator CRD schemas (@kubernetes-models/prometheus-operator);
//   2. for unknown fields: kubernetes-models ignores fields its schema does not
//      name, so every field is probed by replacing its value with one no
//      schema accepts; a field whose probe passes is unknown (a typo, or a
//      field the API server would drop);
//   3. against cross-resource wiring (selectors, ports, volumes, probes) and
//      the deployment conventions (labels, non-root, resources);
// and checks that the PrometheusRule embeds deploy/prometheus/oubli-rules.yaml.
//
//   node tests/deploy/validate-manifests.mjs --modules=NODE_MODULES --source=REPO
import fs from "node:fs";
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
};

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
      for (const probeName of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const probe = c[probeName];
        if (!probe) { problem(cw, `no ${probeName}`); continue; }
        if (!probe.grpc) problem(cw, `${probeName} is not a native gRPC probe`);
        else if (!portNumbers.has(probe.grpc.port)) problem(cw, `${probeName} port ${probe.grpc.port} is not a container port`);
      }
      for (const a of c.args ?? []) {
        const m = a.match(/^--flagfile=(.+)$/);
        if (!m) continue;
        const mount = (c.volumeMounts ?? []).find((vm) => m[1].startsWith(vm.mountPath + "/"));
        const cm = mount && volumes.get(mount.name)?.configMap;
        const data = cm && byKind("ConfigMap").find((x) => x.metadata.name === cm.name)?.data;
        const keyName = mount && m[1].slice(mount.mountPath.length + 1);
        if (!data || data[keyName] === undefined) problem(cw, `--flagfile ${m[1]} is not a key of a mounted ConfigMap`);
      }
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
    }
  }
}

function checkOverlaySpecifics(name, resources) {
  const ss = (n) => resources.find((r) => r.kind === "StatefulSet" && r.metadata.name === n);
  const worker = ss("oubli-worker")?.spec.template.spec;
  const coordinator = ss("oubli-coordinator")?.spec.template.spec;
  if (!worker || !coordinator) { problem(name, "coordinator or worker StatefulSet missing"); return; }
  const gpu = (pod) => pod.containers.some((c) => c.resources?.limits?.["nvidia.com/gpu"]);
  if (name.endsWith("gpu")) {
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

const targets = [
  ["base", "deploy/base"],
  ["overlays/cpu", "deploy/overlays/cpu"],
  ["overlays/gpu", "deploy/overlays/gpu"],
];
for (const [name, dir] of targets) {
  let resources;
  try {
    resources = render(path.join(source, dir), yaml);
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
  } else {
    checkWiring(name, resources);
    checkOverlaySpecifics(name, resources);
  }
  console.log(`${name}: ${resources.length} resources (${resources.map((r) => r.kind).join(", ")}), ${schemaFailures} schema failures`);
}

if (failures > 0) {
  console.log(`${failures} problem(s)`);
  process.exit(1);
}
console.log("all manifests valid");

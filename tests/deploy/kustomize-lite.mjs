// The subset of kustomize that deploy/ uses, so ctest can render the base and
// overlays without kubectl. Anything outside the subset is an error, never
// silently ignored: if deploy/ starts using another kustomize feature, extend
// this file (or validate with the real kustomize) instead.
//
// Supported kustomization fields:
//   resources   files (multi-document YAML) and directories (kustomizations)
//   components  directories holding a kind: Component kustomization (its
//               resources and patches only), applied in order after this
//               kustomization's resources and before its own patches,
//               namespace and images, as kustomize does
//   namespace   set on every namespaced resource (and renames a Namespace)
//   patches     {path, target: {kind, name}}: strategic merge patches with
//               the list merge keys in MERGE_KEYS; other lists are replaced
//   images      {name, newName?, newTag?, digest?} on (init)containers
//
// Usage as a CLI (prints the rendered stream, like `kubectl kustomize DIR`):
//   node tests/deploy/kustomize-lite.mjs --modules=NODE_MODULES_DIR DIR
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const KUSTOMIZATION_FIELDS = new Set([
  "apiVersion", "kind", "resources", "components", "namespace", "patches", "images",
]);
const COMPONENT_FIELDS = new Set(["apiVersion", "kind", "resources", "patches"]);

// Cluster-scoped kinds that appear (or could plausibly appear) in deploy/.
const CLUSTER_SCOPED = new Set([
  "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
  "PersistentVolume", "StorageClass", "PriorityClass",
]);

// Strategic merge keys by list field name (Kubernetes' patchMergeKey for the
// pod-spec lists deploy/ patches). Lists not named here are replaced whole,
// which is also what kustomize does for lists without a merge key
// (tolerations, args, command).
const MERGE_KEYS = {
  containers: "name",
  initContainers: "name",
  volumes: "name",
  env: "name",
  volumeMounts: "mountPath",
  imagePullSecrets: "name",
};

export function loadYamlLib(modulesDir) {
  const require = createRequire(path.join(path.resolve(modulesDir), "noop.js"));
  return require("js-yaml");
}

function fail(message) {
  throw new Error(`kustomize-lite: ${message}`);
}

function readDocuments(yaml, file) {
  const text = fs.readFileSync(file, "utf8");
  return yaml.loadAll(text, null, { filename: file }).filter((d) => d != null);
}

function isPlainObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function strategicMerge(base, patch, where = "") {
  if (!isPlainObject(base) || !isPlainObject(patch)) return structuredClone(patch);
  const out = structuredClone(base);
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith("$")) fail(`patch directive ${key} at ${where} not supported`);
    if (value === null) {
      delete out[key];
    } else if (isPlainObject(value) && isPlainObject(out[key])) {
      out[key] = strategicMerge(out[key], value, `${where}/${key}`);
    } else if (Array.isArray(value) && Array.isArray(out[key]) && MERGE_KEYS[key]) {
      const mk = MERGE_KEYS[key];
      const merged = out[key].map((x) => structuredClone(x));
      for (const item of value) {
        if (!isPlainObject(item) || item[mk] === undefined) {
          fail(`${where}/${key}: patch item without merge key ${mk}`);
        }
        const i = merged.findIndex((x) => isPlainObject(x) && x[mk] === item[mk]);
        if (i >= 0) merged[i] = strategicMerge(merged[i], item, `${where}/${key}/${item[mk]}`);
        else merged.push(structuredClone(item));
      }
      out[key] = merged;
    } else {
      out[key] = structuredClone(value);
    }
  }
  return out;
}

function podSpecOf(resource) {
  const spec = resource.spec;
  if (!spec) return null;
  if (spec.template && spec.template.spec) return spec.template.spec; // workloads
  if (spec.jobTemplate) return spec.jobTemplate.spec?.template?.spec ?? null;
  if (resource.kind === "Pod") return spec;
  return null;
}

function splitImage(image) {
  // name[:tag][@digest]; a ':' before the last '/' belongs to a registry port.
  let rest = image;
  let digest = null;
  const at = rest.indexOf("@");
  if (at >= 0) { digest = rest.slice(at + 1); rest = rest.slice(0, at); }
  let tag = null;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) { tag = rest.slice(colon + 1); rest = rest.slice(0, colon); }
  return { name: rest, tag, digest };
}

function applyImages(resources, images) {
  for (const img of images) {
    for (const k of Object.keys(img)) {
      if (!["name", "newName", "newTag", "digest"].includes(k)) fail(`images: field ${k} not supported`);
    }
    let used = false;
    for (const r of resources) {
      const pod = podSpecOf(r);
      if (!pod) continue;
      for (const c of [...(pod.containers ?? []), ...(pod.initContainers ?? [])]) {
        const parts = splitImage(c.image ?? "");
        if (parts.name !== img.name) continue;
        used = true;
        const name = img.newName ?? parts.name;
        if (img.digest) c.image = `${name}@${img.digest}`;
        else if (img.newTag) c.image = `${name}:${img.newTag}`;
        else c.image = name + (parts.tag ? `:${parts.tag}` : "") + (parts.digest ? `@${parts.digest}` : "");
      }
    }
    if (!used) fail(`images: no container uses image ${img.name}`);
  }
}

function readKustomization(dir, yaml, kind) {
  const kfile = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
    .map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  if (!kfile) fail(`no kustomization in ${dir}`);
  const [k] = readDocuments(yaml, kfile);
  const fields = kind === "Component" ? COMPONENT_FIELDS : KUSTOMIZATION_FIELDS;
  for (const key of Object.keys(k)) {
    if (!fields.has(key)) fail(`${kfile}: field ${key} not supported${kind === "Component" ? " in a Component" : ""}`);
  }
  if ((k.kind ?? "Kustomization") !== kind) {
    fail(`${kfile}: kind ${k.kind ?? "Kustomization"} where a ${kind} is expected`);
  }
  const apiVersion = kind === "Component"
    ? "kustomize.config.k8s.io/v1alpha1" : "kustomize.config.k8s.io/v1beta1";
  if (k.apiVersion !== undefined && k.apiVersion !== apiVersion) {
    fail(`${kfile}: apiVersion ${k.apiVersion}, expected ${apiVersion}`);
  }
  return { k, kfile };
}

function accumulateResources(dir, k, kfile, yaml, resources) {
  for (const entry of k.resources ?? []) {
    const p = path.join(dir, entry);
    if (!fs.existsSync(p)) fail(`${kfile}: resource ${entry} does not exist`);
    if (fs.statSync(p).isDirectory()) resources.push(...render(p, yaml));
    else resources.push(...readDocuments(yaml, p));
  }
}

function applyPatches(dir, k, kfile, yaml, resources) {
  for (const patch of k.patches ?? []) {
    for (const key of Object.keys(patch)) {
      if (!["path", "target"].includes(key)) fail(`${kfile}: patches field ${key} not supported`);
    }
    if (!patch.path) fail(`${kfile}: only patches with path are supported`);
    const docs = readDocuments(yaml, path.join(dir, patch.path));
    if (docs.length !== 1) fail(`${patch.path}: one patch document expected`);
    const doc = docs[0];
    const target = patch.target ?? { kind: doc.kind, name: doc.metadata?.name };
    for (const key of Object.keys(target)) {
      if (!["kind", "name"].includes(key)) fail(`${kfile}: patch target field ${key} not supported`);
    }
    let matched = 0;
    for (let i = 0; i < resources.length; i++) {
      const r = resources[i];
      if ((target.kind && r.kind !== target.kind) || (target.name && r.metadata?.name !== target.name)) continue;
      matched++;
      resources[i] = strategicMerge(r, doc, `${r.kind}/${r.metadata?.name}`);
    }
    if (matched === 0) fail(`${kfile}: patch ${patch.path} matches no resource`);
  }
}

export function render(dir, yaml) {
  const { k, kfile } = readKustomization(dir, yaml, "Kustomization");
  const resources = [];
  accumulateResources(dir, k, kfile, yaml, resources);

  // A component adds its resources to, and patches, everything accumulated
  // so far (kustomize's accumulateComponents).
  for (const entry of k.components ?? []) {
    const p = path.join(dir, entry);
    if (!fs.existsSync(p) || !fs.statSync(p).isDirectory()) {
      fail(`${kfile}: component ${entry} is not a directory`);
    }
    const component = readKustomization(p, yaml, "Component");
    accumulateResources(p, component.k, component.kfile, yaml, resources);
    applyPatches(p, component.k, component.kfile, yaml, resources);
  }

  applyPatches(dir, k, kfile, yaml, resources);

  if (k.namespace) {
    for (const r of resources) {
      if (r.kind === "Namespace") r.metadata.name = k.namespace;
      else if (!CLUSTER_SCOPED.has(r.kind)) r.metadata.namespace = k.namespace;
    }
  }
  if (k.images) applyImages(resources, k.images);

  const seen = new Set();
  for (const r of resources) {
    const id = `${r.apiVersion}/${r.kind}/${r.metadata?.namespace ?? ""}/${r.metadata?.name}`;
    if (seen.has(id)) fail(`${dir}: duplicate resource ${id}`);
    seen.add(id);
  }
  return resources;
}

// CLI
if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  const args = process.argv.slice(2);
  const modules = args.find((a) => a.startsWith("--modules="))?.slice("--modules=".length)
    ?? path.join(path.dirname(new URL(import.meta.url).pathname), "node_modules");
  const dirs = args.filter((a) => !a.startsWith("--"));
  if (dirs.length !== 1) {
    console.error("usage: node kustomize-lite.mjs [--modules=DIR] KUSTOMIZATION_DIR");
    process.exit(2);
  }
  const yaml = loadYamlLib(modules);
  process.stdout.write(render(dirs[0], yaml).map((r) => yaml.dump(r, { lineWidth: -1 })).join("---\n"));
}

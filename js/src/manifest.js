// Reading manifest.json safely, in the order of edgegen.runtime.manifest: at most 1 MiB, at most
// 32 levels of arrays/objects (counted on the text before parsing: a 200,000-deep `[[[…` is a
// clean error, never a stack overflow), strict UTF-8 JSON (no duplicate key, NaN, number beyond
// a double or integer of more than 30 digits), the schema version, then the one JSON Schema
// (bundle.schema.json, compiled by ajv's draft 2020-12 class). Only then does code read a field.
import { BundleError } from "./errors.js";
import { LATENT } from "./latent.js";
import { RULE } from "./postprocess.js";

export const SCHEMA = "edgegen.bundle/1";
export const MANIFEST = "manifest.json";
export const SIGNATURE = "bundle.sig";
export const CACHE_DIRS = ["cache", "trt_cache"]; // engine caches tools add after export
export const MAX_MANIFEST_BYTES = 1 << 20;
export const MAX_DEPTH = 32;
export const MAX_INT_DIGITS = 30;

/** The deepest nesting of arrays/objects in JSON text (brackets inside strings skipped); stops
 * at limit + 1. */
export function nestingDepth(text, limit = MAX_DEPTH) {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // a backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return limit + 1;
      if (depth > deepest) deepest = depth;
    } else if (c === 93 || c === 125) depth--;
  }
  return deepest;
}

const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const SPACE = /[ \t\n\r]*/y;

/** JSON.parse with Python's strictness (see the module comment); the depth is already bounded,
 * so the recursion is too. Objects get own properties only ("__proto__" is a plain key). */
export function strictParse(text) {
  let pos = 0;
  const fail = (what) => { throw new SyntaxError(`${what} at character ${pos}`); };
  const skip = () => { SPACE.lastIndex = pos; SPACE.exec(text); pos = SPACE.lastIndex; };
  const match = (re) => {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m) pos = re.lastIndex;
    return m;
  };
  function value() {
    skip();
    const c = text[pos];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, pos)) { pos += word.length; return v; }
    }
    const m = match(NUMBER);
    if (!m) fail(c === undefined ? "unexpected end of text" : `unexpected ${JSON.stringify(c)}`);
    if (!m[1] && !m[2] && m[0].replace("-", "").length > MAX_INT_DIGITS) fail(`integer of ${m[0].length} digits (${m[0].slice(0, 20)}…)`);
    const v = Number(m[0]);
    if (!Number.isFinite(v)) fail(`number ${m[0].slice(0, 40)} does not fit a double`);
    return v;
  }
  function string() {
    const m = match(STRING);
    if (!m) fail("bad string");
    return JSON.parse(m[0]);
  }
  function object() {
    pos++;
    const out = {};
    skip();
    if (text[pos] === "}") { pos++; return out; }
    for (;;) {
      skip();
      if (text[pos] !== '"') fail("expected a key");
      const key = string();
      if (Object.hasOwn(out, key)) fail(`duplicate key ${JSON.stringify(key)}`);
      skip();
      if (text[pos++] !== ":") fail("expected ':'");
      Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
      skip();
      const c = text[pos++];
      if (c === "}") return out;
      if (c !== ",") fail("expected ',' or '}'");
    }
  }
  function array() {
    pos++;
    const out = [];
    skip();
    if (text[pos] === "]") { pos++; return out; }
    for (;;) {
      out.push(value());
      skip();
      const c = text[pos++];
      if (c === "]") return out;
      if (c !== ",") fail("expected ',' or ']'");
    }
  }
  const result = value();
  skip();
  if (pos !== text.length) fail("extra data after the JSON value");
  return result;
}

/** ajv's JSON Pointer "/variants/fp16/file" -> "$.variants.fp16.file", as Python reports it. */
export function jsonPath(pointer) {
  const parts = pointer.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  return "$" + parts.map((p) => (/^[0-9]+$/.test(p) ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`)).join("");
}

const jsonType = (v) => (v === null ? "null" : Array.isArray(v) ? "an array" : Number.isInteger(v) ? "an integer"
  : typeof v === "number" ? "a number" : typeof v === "string" ? "a string" : typeof v === "boolean" ? "a boolean" : "an object");

const compiled = new WeakMap();

/** The validator ajv compiled from the packaged schema at `npm pack` (bundle.schema.validate.js,
 * beside bundle.schema.json): { validate, sha256 } — or null in a checkout, where the readers
 * compile the one schema file at run time instead. */
export async function packagedValidator() {
  try {
    const mod = await import("../bundle.schema.validate.js");
    return { validate: mod.default, sha256: mod.SCHEMA_SHA256 };
  } catch {
    return null;
  }
}

/** A validate function for `schema` (compiled once per schema object by the Ajv2020 class). */
export function compileSchema(Ajv, schema) {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = new Ajv({ allErrors: false, strict: false }).compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

function schemaViolation(e, data) {
  const path = jsonPath(e.instancePath);
  if (e.keyword === "pattern" && e.propertyName !== undefined) {
    return `manifest path ${JSON.stringify(e.propertyName)} under ${path} leaves the bundle or is not a plain relative path`;
  }
  if (e.keyword === "pattern" && /relpath/.test(e.schemaPath)) {
    return `manifest path ${JSON.stringify(String(pick(data, e.instancePath) ?? "").slice(0, 200))} at ${path} leaves the bundle or is not a plain relative path (no leading '/', '..', '\\', drive letter or control character)`;
  }
  if (e.keyword === "type") return `${path} is ${jsonType(pick(data, e.instancePath))}, expected ${e.params.type}`;
  return `${path}: ${e.message}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ""}`;
}

function pick(data, pointer) {
  let node = data;
  for (const p of pointer.split("/").slice(1)) node = node?.[p.replace(/~1/g, "/").replace(/~0/g, "~")];
  return node;
}

/**
 * The manifest in `bytes` (a Uint8Array of manifest.json) after every check above; `validate`
 * comes from compileSchema. A BundleError names `where` and the JSON path of a violation.
 */
export function parseManifest(bytes, validate, where = MANIFEST) {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new BundleError(`${where} is ${bytes.length.toLocaleString("en")} bytes; an edgegen manifest is at most ${MAX_MANIFEST_BYTES.toLocaleString("en")} — this is not a manifest edgegen wrote`);
  }
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new BundleError(`${where} is not UTF-8; re-export the bundle`);
  }
  if (nestingDepth(text) > MAX_DEPTH) {
    throw new BundleError(`${where} nests arrays/objects more than ${MAX_DEPTH} deep; an edgegen manifest never does — the file was tampered with`);
  }
  let manifest;
  try {
    manifest = strictParse(text);
  } catch (err) {
    throw new BundleError(`${where} is not valid JSON (${err.message.slice(0, 200)}); re-export the bundle`);
  }
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) {
    throw new BundleError(`${where} holds a JSON ${jsonType(manifest).replace(/^an? /, "")}, not an object; expected a manifest made by \`edgegen export\``);
  }
  if (manifest.schema !== SCHEMA) {
    throw new BundleError(`${where} has schema ${JSON.stringify(String(manifest.schema).slice(0, 80))}; this edgegen-runtime reads ${JSON.stringify(SCHEMA)} — upgrade edgegen-runtime or re-export the bundle`);
  }
  if (!validate(manifest)) {
    throw new BundleError(`${where} does not follow the ${SCHEMA} schema — ${schemaViolation(validate.errors[0], manifest)}; the manifest was edited or damaged — re-export the bundle`);
  }
  return manifest;
}

/** Refuse a bundle whose latent or uint8 rule is not the one this package implements. */
export function checkContract(manifest, where) {
  const name = manifest.latent?.name;
  const rule = manifest.postprocess?.rule;
  if (name !== LATENT) throw new BundleError(`${where} uses latent ${JSON.stringify(name)}; this edgegen-runtime implements ${JSON.stringify(LATENT)} — upgrade edgegen-runtime`);
  if (rule !== RULE) throw new BundleError(`${where} uses post-processing rule ${JSON.stringify(rule)}; this edgegen-runtime implements ${JSON.stringify(RULE)} — upgrade edgegen-runtime`);
  const gen = manifest.generator;
  const dtypes = [gen.inputs[0]?.dtype, gen.inputs[1]?.dtype, gen.outputs[0]?.dtype];
  if (gen.inputs.length !== 2 || dtypes.join() !== "float32,int64,float32") {
    throw new BundleError(`${where}: generator I/O is [${gen.inputs.map((i) => `${i.name}:${i.dtype}`)}] -> [${gen.outputs.map((o) => `${o.name}:${o.dtype}`)}]; this edgegen-runtime expects [z: float32, label: int64] -> [image: float32] — re-export`);
  }
}

/** (where, path) of every file the manifest names outside `files` (Python's _named_files, and
 * the ORT-format section). */
export function namedFiles(manifest) {
  const out = Object.entries(manifest.variants).map(([k, v]) => [`variants.${k}.file`, v.file]);
  const gen = manifest.generator;
  if (gen.file) out.push(["generator.file", gen.file]);
  if (manifest.evaluator) out.push(["evaluator.file", manifest.evaluator.file]);
  for (const [where, den] of [["denoiser", manifest.denoiser], ["sampler.denoiser", manifest.sampler?.denoiser],
    ["generator.sampler.denoiser", gen.sampler?.denoiser]]) {
    if (!den) continue;
    if (den.file) out.push([`${where}.file`, den.file]);
    for (const [k, v] of Object.entries(den.variants ?? {})) out.push([`${where}.variants.${k}.file`, v.file]);
  }
  for (const [k, rel] of Object.entries(manifest.golden.polygraphy ?? {})) out.push([`golden.polygraphy.${k}`, rel]);
  const orf = manifest.ort_format;
  if (orf) {
    if (orf.required_operators) out.push(["ort_format.required_operators", orf.required_operators]);
    for (const [onnx, ortFile] of Object.entries(orf.models)) out.push([`ort_format.models key`, onnx], [`ort_format.models[${JSON.stringify(onnx)}]`, ortFile]);
  }
  return out;
}

/** ([input_K.pb in K order], output_0.pb) of golden set `index`, bundle-relative. */
export function goldenFiles(manifest, index, where) {
  const dir = manifest.golden.sets[index].dir.replace(/\/+$/, "") + "/";
  const inputs = [];
  for (const rel of Object.keys(manifest.files)) {
    const m = rel.startsWith(dir) ? /^input_([0-9]+)\.pb$/.exec(rel.slice(dir.length)) : null;
    if (m) inputs.push([Number(m[1]), rel]);
  }
  const output = `${dir}output_0.pb`;
  if (!inputs.length || !Object.hasOwn(manifest.files, output)) {
    throw new BundleError(`${where}: golden set ${dir} lists no input_K.pb / output_0.pb files; re-export the bundle`);
  }
  return [inputs.sort((a, b) => a[0] - b[0]).map(([, rel]) => rel), output];
}

/** Every file the manifest names is listed with its sha256; golden sets have files; the label
 * names fit the classes. */
export function checkNames(manifest, where) {
  for (const [key, rel] of namedFiles(manifest)) {
    if (!Object.hasOwn(manifest.files, rel)) throw new BundleError(`${where} names ${JSON.stringify(rel)} (${key}) but does not list its sha256 under 'files'; the manifest was edited — re-export`);
  }
  manifest.golden.sets.forEach((_, i) => goldenFiles(manifest, i, where));
  const labels = manifest.generator.labels;
  if (labels && labels.length !== manifest.generator.n_classes) {
    throw new BundleError(`${where}: generator.labels has ${labels.length} names for ${manifest.generator.n_classes} classes; re-export the bundle`);
  }
}

/** The file rules on a listing of the folder (`found`: a Set of bundle-relative regular files,
 * cache folders left out): nothing unlisted, nothing missing, no reserved name listed. */
export function checkListing(manifest, found, root) {
  const listed = Object.keys(manifest.files);
  for (const rel of [...found].sort()) {
    if (!Object.hasOwn(manifest.files, rel) && rel !== MANIFEST && rel !== SIGNATURE) {
      throw new BundleError(`${root}/${rel} is in the bundle but not in its manifest; remove it or re-export the bundle`);
    }
  }
  for (const rel of listed.sort()) {
    if (found.has(rel)) continue;
    if (rel === MANIFEST || rel === SIGNATURE || CACHE_DIRS.includes(rel.split("/")[0])) {
      throw new BundleError(`${root}/${MANIFEST} lists ${JSON.stringify(rel)}, a name the manifest cannot cover; the manifest was edited — re-export`);
    }
    throw new BundleError(`${root}/${rel} is listed in the manifest but missing (or not a regular file); the bundle is incomplete — re-export or copy it again`);
  }
}

/** [C, H, W] of one image: generator.image_shape, else the image output's dimensions, else
 * MNIST's [1, 28, 28] (bundles from before the field). */
export function imageShape(manifest) {
  const gen = manifest.generator;
  if (gen.image_shape) return gen.image_shape.map(Number);
  const dims = (gen.outputs[0]?.shape ?? []).slice(1);
  return dims.length === 3 && dims.every(Number.isInteger) ? dims : [1, 28, 28];
}

// The parts of edgegen that an app reimplements, in plain JavaScript (Node.js and browsers):
// the manifest checks (size, nesting, the one JSON Schema through ajv, the file rules), the
// signature check (OpenSSF model signing's DSSE envelope), the portable latent, the uint8 rule
// and the guard, each as the bundle's manifest words it. Shared by examples/node and
// examples/web; what differs between the two is passed in: the ONNX Runtime package (`ort`),
// the Ajv class, the schema (edgegen/runtime/bundle.schema.json, the file Python validates
// with), a sha256 and an ECDSA verify function.

export const SCHEMA = "edgegen.bundle/1";
export const LATENT = "splitmix64-boxmuller-f64-to-f32/1";
export const RULE = "u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)";
export const GUARD = { maxRetries: 4, minProb: 0.5 }; // edgegen.runtime.guard's defaults

const M64 = (1n << 64n) - 1n;
const GAMMA = 0x9e3779b97f4a7c15n;
const MIX1 = 0xbf58476d1ce4e5b9n;
const MIX2 = 0x94d049bb133111ebn;
const RETRY_STEP = 0xd1b54a32d192ed03n;
const TWO_PI = 6.283185307179586;
const TWO_M53 = 2 ** -53;

/** A seed from text or a number: an integer in [0, 2**64), as a BigInt. */
export function parseSeed(value) {
  const text = String(value).trim();
  if (!/^[0-9]+$/.test(text)) throw new Error(`seed must be an integer in [0, 2**64), got ${JSON.stringify(value)}`);
  const seed = BigInt(text);
  if (seed > M64) throw new Error(`seed ${text} is outside [0, 2**64)`);
  return seed;
}

/** SplitMix64's k-th output for `seed` (both BigInt): mix(seed + (k + 1) * GAMMA). */
function word(seed, k) {
  let x = (seed + (k + 1n) * GAMMA) & M64;
  x = ((x ^ (x >> 30n)) * MIX1) & M64;
  x = ((x ^ (x >> 27n)) * MIX2) & M64;
  return x ^ (x >> 31n);
}

/** Samples start .. start + n - 1 of `seed`'s stream: a Float32Array [n * zDim], row-major. */
export function latent(seed, n, zDim, start = 0) {
  const pairs = Math.ceil(zDim / 2);
  const out = new Float32Array(n * zDim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < pairs; j++) {
      const k1 = 2n * (BigInt(start + i) * BigInt(pairs) + BigInt(j));
      // 53-bit integers convert to doubles exactly; the products by 2**-53 are exact too.
      const u1 = Number((word(seed, k1) >> 11n) + 1n) * TWO_M53; // (0, 1]
      const u2 = Number(word(seed, k1 + 1n) >> 11n) * TWO_M53; // [0, 1)
      const r = Math.sqrt(-2 * Math.log(u1));
      const t = TWO_PI * u2;
      out[i * zDim + 2 * j] = Math.fround(r * Math.cos(t));
      if (2 * j + 1 < zDim) out[i * zDim + 2 * j + 1] = Math.fround(r * Math.sin(t));
    }
  }
  return out;
}

/** The seed of the guard's attempt `a` (attempt 0 is the seed itself). */
export function retrySeed(seed, attempt) {
  return (seed + BigInt(attempt) * RETRY_STEP) & M64;
}

/** z = float32(z * float32(psi)); exact in doubles, since a product of two float32 fits in 53 bits. */
export function truncate(z, psi) {
  if (psi === null || psi === undefined || psi === 1) return z;
  if (!(Number.isFinite(psi) && psi > 0 && psi <= 4)) throw new Error(`truncation must be in (0, 4], got ${psi}`);
  const p = Math.fround(psi);
  return z.map((v) => Math.fround(v * p));
}

/** The uint8 rule on float32 values in [-1, 1] (JavaScript numbers are float64). */
export function toUint8(values) {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isFinite(x)) throw new Error(`the model produced ${x} at pixel ${i}`);
    out[i] = Math.min(255, Math.max(0, Math.floor((x + 1.0) * 127.5 + 0.5)));
  }
  return out;
}

/**
 * [C, H, W] of one image: manifest.generator.image_shape, else the image output's dimensions
 * (bundles from before the field: MNIST's [1, 28, 28]).
 */
export function imageShape(manifest) {
  const gen = manifest.generator;
  if (gen.image_shape) return gen.image_shape;
  const dims = gen.outputs[0].shape.slice(1);
  return dims.length === 3 && dims.every(Number.isInteger) ? dims : [1, 28, 28];
}

/**
 * The uint8 rule, laid out as edgegen.runtime returns pixels: float32 images [n, C, H, W] ->
 * uint8 [n, H, W] for one channel, [n, H, W, C] (channels interleaved, as PPM/PNG store RGB)
 * for more.
 */
export function toPixels(values, [c, h, w]) {
  const u8 = toUint8(values);
  if (c === 1) return u8;
  const out = new Uint8Array(u8.length);
  const plane = h * w;
  for (let n0 = 0; n0 < u8.length; n0 += c * plane) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < plane; i++) out[n0 + i * c + ch] = u8[n0 + ch * plane + i];
    }
  }
  return out;
}

/** Refuse a manifest whose schema, latent or uint8 rule is not the one implemented here. */
export function checkContract(manifest) {
  const found = [manifest.schema, manifest.latent?.name, manifest.postprocess?.rule];
  const expected = [SCHEMA, LATENT, RULE];
  const what = ["schema", "latent", "post-processing rule"];
  for (let i = 0; i < 3; i++) {
    if (found[i] !== expected[i]) {
      throw new Error(`the bundle's ${what[i]} is ${JSON.stringify(found[i])}; this app implements ${JSON.stringify(expected[i])}`);
    }
  }
}

/** A manifest path that stays inside the bundle (no absolute path, no "..", no backslash). */
export function safeRelative(rel) {
  if (typeof rel !== "string" || rel.startsWith("/") || rel.includes("\\") || rel.split("/").includes("..")
      || /^[A-Za-z]:/.test(rel)) {
    throw new Error(`manifest path ${JSON.stringify(rel)} leaves the bundle: the manifest was tampered with`);
  }
  return rel;
}

function softmaxAt(logits, row, nClasses) {
  let max = -Infinity;
  for (let c = 0; c < nClasses; c++) max = Math.max(max, logits[row * nClasses + c]);
  const e = [];
  let sum = 0;
  for (let c = 0; c < nClasses; c++) { e.push(Math.exp(logits[row * nClasses + c] - max)); sum += e[c]; }
  return e.map((v) => v / sum);
}

/**
 * A generator over ONNX Runtime sessions: `generate(labels, seed, {truncation, guard})`.
 * Sample i of a request is row i of latent(seed, labels.length, zDim), as in edgegen.runtime;
 * the guard redraws a rejected sample i from row i of retrySeed(seed, a), a = 1..maxRetries.
 */
export function createGenerator(ort, manifest, generatorSession, evaluatorSession = null) {
  checkContract(manifest);
  const gen = manifest.generator;
  const zDim = gen.z_dim;
  const nClasses = gen.n_classes;
  const [zName, labelName] = gen.inputs.map((i) => i.name);
  const imageName = gen.outputs[0].name;
  const shape = imageShape(manifest); // [C, H, W]
  const pixels = shape.reduce((a, b) => a * b, 1);

  async function forward(z, labels) {
    const feeds = {
      [zName]: new ort.Tensor("float32", z, [labels.length, zDim]),
      [labelName]: new ort.Tensor("int64", BigInt64Array.from(labels.map(BigInt)), [labels.length]),
    };
    const out = await generatorSession.run(feeds);
    return out[imageName].data; // Float32Array [n * C * H * W]
  }

  async function judge(images, labels) {
    const ev = manifest.evaluator;
    const feeds = { [ev.inputs[0].name]: new ort.Tensor("float32", images, [labels.length, ...ev.inputs[0].shape.slice(1)]) };
    const logits = (await evaluatorSession.run(feeds))[ev.outputs[0].name].data;
    return labels.map((label, i) => {
      const p = softmaxAt(logits, i, nClasses);
      const predicted = p.indexOf(Math.max(...p));
      return { predicted, prob: p[label], accepted: predicted === label && p[label] >= GUARD.minProb };
    });
  }

  async function generate(labels, seed, { truncation = null, guard = false } = {}) {
    for (const y of labels) {
      if (!Number.isInteger(y) || y < 0 || y >= nClasses) throw new Error(`label ${y} is not an integer in 0..${nClasses - 1}`);
    }
    if (labels.length === 0) throw new Error("labels is empty");
    const s = typeof seed === "bigint" ? seed : parseSeed(seed);
    const n = labels.length;
    const images = await forward(truncate(latent(s, n, zDim), truncation), labels);
    const result = { images, attempts: new Array(n).fill(0), verdicts: null };
    if (evaluatorSession && manifest.evaluator) result.verdicts = await judge(images, labels);
    if (!guard) return finish(result);
    if (!result.verdicts) throw new Error("guard needs the evaluator, and this bundle has none");
    for (let a = 1; a <= GUARD.maxRetries; a++) {
      const todo = result.verdicts.flatMap((v, i) => (v.accepted ? [] : [i]));
      if (todo.length === 0) break;
      const zAll = truncate(latent(retrySeed(s, a), n, zDim), truncation);
      const z = new Float32Array(todo.length * zDim);
      todo.forEach((i, k) => z.set(zAll.subarray(i * zDim, (i + 1) * zDim), k * zDim));
      const redoLabels = todo.map((i) => labels[i]);
      const redo = await forward(z, redoLabels);
      const verdicts = await judge(redo, redoLabels);
      todo.forEach((i, k) => {
        result.images.set(redo.subarray(k * pixels, (k + 1) * pixels), i * pixels);
        result.verdicts[i] = verdicts[k];
        result.attempts[i] = a;
      });
    }
    return finish(result);
  }

  function finish(result) {
    return { ...result, u8: toPixels(result.images, shape), pixels, shape };
  }

  return { generate, forward, zDim, nClasses, pixels, shape };
}

// --------------------------------------------------------------------------- manifest checks

export const MANIFEST = "manifest.json";
export const SIGNATURE = "bundle.sig";
export const CACHE_DIRS = ["cache", "trt_cache"]; // engine caches tools add after export
export const MAX_MANIFEST_BYTES = 1 << 20; // as edgegen.runtime.manifest
export const MAX_DEPTH = 32;

/** The deepest nesting of arrays/objects in JSON text (brackets inside strings skipped); stops
 * at limit + 1, so a 200,000-deep manifest is refused before JSON.parse sees it. */
export function nestingDepth(text, limit = MAX_DEPTH) {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) {
      depth++;
      if (depth > limit) return limit + 1;
      if (depth > deepest) deepest = depth;
    } else if (c === 93 || c === 125) depth--;
  }
  return deepest;
}

function jsonPath(instancePath) {
  // ajv's JSON Pointer "/variants/fp16/file" -> "$.variants.fp16.file" (as Python reports it)
  const parts = instancePath.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  return "$" + parts.map((p) => (/^[0-9]+$/.test(p) ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`)).join("");
}

/** A validate function for the bundle schema (call once; ajv compiles it). */
export function compileSchema(Ajv, schema) {
  const ajv = new Ajv({ allErrors: false, strict: false });
  return ajv.compile(schema);
}

/**
 * The manifest in `bytes` (a Uint8Array of manifest.json) after the same checks, in the same
 * order, as edgegen.runtime.manifest: size, nesting, UTF-8 and JSON, the schema version, then the
 * JSON Schema (`validate` from compileSchema). Throws an Error naming the JSON path of the first
 * violation.
 */
export function parseManifest(bytes, validate, where = MANIFEST) {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new Error(`${where} is ${bytes.length} bytes; an edgegen manifest is at most ${MAX_MANIFEST_BYTES}`);
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${where} is not UTF-8; re-export the bundle`);
  }
  if (nestingDepth(text) > MAX_DEPTH) throw new Error(`${where} nests arrays/objects more than ${MAX_DEPTH} deep; the file was tampered with`);
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where} is not valid JSON (${err.message}); re-export the bundle`);
  }
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) throw new Error(`${where} is not a JSON object`);
  if (manifest.schema !== SCHEMA) throw new Error(`${where} has schema ${JSON.stringify(manifest.schema)}; this app reads ${JSON.stringify(SCHEMA)}`);
  if (!validate(manifest)) {
    const e = validate.errors[0];
    const path = jsonPath(e.instancePath);
    if (e.keyword === "pattern" && /relpath/.test(e.schemaPath)) {
      throw new Error(`${where} does not follow the ${SCHEMA} schema — manifest path at ${path} leaves the bundle or is not a plain relative path`);
    }
    if (e.keyword === "propertyNames" || (e.keyword === "pattern" && e.propertyName !== undefined)) {
      throw new Error(`${where} does not follow the ${SCHEMA} schema — manifest path ${JSON.stringify(e.params?.propertyName ?? e.propertyName)} under ${path} leaves the bundle or is not a plain relative path`);
    }
    throw new Error(`${where} does not follow the ${SCHEMA} schema — ${path}: ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ""}`);
  }
  return manifest;
}

/** (where, path) of every file the manifest names outside `files` (as Python's _named_files). */
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
  return out;
}

/** Every file the manifest names is listed with its sha256; the label names fit the classes. */
export function checkNames(manifest) {
  for (const [key, rel] of namedFiles(manifest)) {
    if (!Object.hasOwn(manifest.files, safeRelative(rel))) throw new Error(`the manifest names ${rel} (${key}) without its sha256 under 'files'`);
  }
  const labels = manifest.generator.labels;
  if (labels && labels.length !== manifest.generator.n_classes) throw new Error(`generator.labels has ${labels.length} names for ${manifest.generator.n_classes} classes`);
}

/** The file rules on a listing of the bundle folder (`found`: bundle-relative names of its
 * regular files, cache folders left out): nothing unlisted, nothing missing. */
export function checkListing(manifest, found) {
  const listed = new Set(Object.keys(manifest.files));
  for (const rel of [...found].sort()) {
    if (!listed.has(rel) && rel !== MANIFEST && rel !== SIGNATURE) throw new Error(`${rel} is in the bundle but not in its manifest; remove it or re-export`);
  }
  for (const rel of [...listed].sort()) {
    if (!found.has(rel)) throw new Error(`${rel} is listed in the manifest but missing (or not a regular file)`);
  }
}

// --------------------------------------------------------------------------- signatures

const IN_TOTO = "application/vnd.in-toto+json";
const STATEMENT = "https://in-toto.io/Statement/v1";
const PREDICATE = "https://model_signing/signature/v1.0";
const BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";

export function b64decode(text) {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** DSSE's pre-authentication encoding: "DSSEv1 len(type) type len(body) body" (bytes). */
export function pae(payloadType, payload) {
  const head = new TextEncoder().encode(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** An ASN.1 DER ECDSA signature (what model_signing writes) as IEEE P1363 r||s (what WebCrypto
 * verifies), each half `size` bytes. */
export function derToP1363(der, size) {
  let pos = 0;
  const expect = (tag) => { if (der[pos++] !== tag) throw new Error("bundle.sig: the signature is not DER ECDSA"); };
  const length = () => {
    let n = der[pos++];
    if (n & 0x80) { const k = n & 0x7f; n = 0; for (let i = 0; i < k; i++) n = (n << 8) | der[pos++]; }
    return n;
  };
  expect(0x30); length();
  const out = new Uint8Array(2 * size);
  for (let half = 0; half < 2; half++) {
    expect(0x02);
    let n = length();
    let start = pos;
    pos += n;
    while (n > size && der[start] === 0) { start++; n--; }
    if (n > size) throw new Error("bundle.sig: an ECDSA integer is too long for the key");
    out.set(der.subarray(start, start + n), half * size + size - n);
  }
  return out;
}

/**
 * Check `bundle.sig` (its text) against a public key and the bundle, the way model_signing does:
 * the DSSE envelope's signature over PAE(payloadType, payload) with `verify(data, derSignature)`
 * (async, true when the platform's ECDSA accepts it), the in-toto statement it signs, its root
 * digest, and then that the signed per-file sha256 list is exactly the bundle: `files` maps every
 * bundle-relative file that the reader hashed itself (manifest.json included) to its sha256 hex;
 * with `complete` (a reader that listed the folder) the two sets must be equal, otherwise (a
 * browser, which cannot list) manifest.json must match and the signed list must be the manifest's
 * `files` plus manifest.json, digest for digest — the manifest then vouches for everything else.
 * Throws an Error naming what differs.
 */
export async function checkSignature(sigText, { verify, sha256, files, manifest, complete }) {
  let sig;
  try {
    sig = JSON.parse(sigText);
  } catch (err) {
    throw new Error(`bundle.sig is not JSON (${err.message})`);
  }
  const env = sig?.dsseEnvelope;
  if (sig?.mediaType !== BUNDLE_MEDIA_TYPE || !env || env.payloadType !== IN_TOTO || !Array.isArray(env.signatures) || env.signatures.length !== 1) {
    throw new Error("bundle.sig is not a model_signing Sigstore bundle with one DSSE signature");
  }
  const payload = b64decode(env.payload);
  if (!(await verify(pae(env.payloadType, payload), b64decode(env.signatures[0].sig)))) {
    throw new Error("bundle.sig does not verify with this public key: wrong key, or a forged signature");
  }
  const statement = JSON.parse(new TextDecoder().decode(payload));
  const pred = statement.predicate ?? {};
  if (statement._type !== STATEMENT || statement.predicateType !== PREDICATE || pred.serialization?.method !== "files"
      || pred.serialization?.hash_type !== "sha256" || !Array.isArray(pred.resources)) {
    throw new Error("bundle.sig signs a statement this reader does not know (expected model_signing v1.0, files, sha256)");
  }
  const signed = new Map();
  const concat = [];
  for (const r of pred.resources) {
    if (r.algorithm !== "sha256" || !/^[0-9a-f]{64}$/.test(r.digest)) throw new Error(`bundle.sig: resource ${r.name} has no sha256`);
    signed.set(r.name, r.digest);
    concat.push(...r.digest.match(/../g).map((h) => parseInt(h, 16)));
  }
  if (statement.subject?.[0]?.digest?.sha256 !== hexOf(await sha256(Uint8Array.from(concat)))) {
    throw new Error("bundle.sig: the statement's root digest does not match its resources");
  }
  const problems = [];
  const expected = complete ? files : new Map([...Object.entries(manifest.files).map(([k, v]) => [k, v.sha256]), [MANIFEST, files.get(MANIFEST)]]);
  for (const [rel, digest] of [...expected].sort()) {
    if (!signed.has(rel)) problems.push(`not signed: ${rel}`);
    else if (signed.get(rel) !== digest) problems.push(`${rel} differs from the signed file`);
  }
  for (const rel of [...signed.keys()].sort()) if (!expected.has(rel)) problems.push(`signed but missing: ${rel}`);
  if (problems.length) throw new Error(`the files differ from what was signed — ${problems.join("; ")}; refusing the bundle`);
  return { status: "verified", files: signed.size };
}

// edgegen-runtime for browsers (and bundlers): loadBundle(url) fetches manifest.json (bounded),
// validates it with the one JSON Schema (ajv), checks the names, with a public key checks
// bundle.sig with WebCrypto, and returns a Generator on onnxruntime-web that fetches only files
// the manifest lists and hashes each (crypto.subtle) before handing those bytes to ONNX Runtime.
// A page cannot list a folder or see a symbolic link: the server must refuse to serve links and
// special files (examples/web/serve.py does) — the signature then vouches for every file loaded.
// crypto.subtle needs a secure context: https, or http on localhost / 127.0.0.1.
import { BundleError, ConfigError, ProviderError } from "./errors.js";
import { Generator } from "./generator.js";
import {
  MANIFEST, MAX_MANIFEST_BYTES, SIGNATURE, checkContract, checkNames, compileSchema, packagedValidator, parseManifest,
} from "./manifest.js";
import { b64decode, checkSignature, derToP1363, hexOf } from "./signature.js";

export * from "./index.js";

/** Where the packaged schema lies beside this module (copied in at `npm pack`). */
export const SCHEMA_URL = new URL("../bundle.schema.json", import.meta.url);

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new ConfigError("crypto.subtle is not available: serve the page over https or from localhost / 127.0.0.1 (a secure context), since every file's sha256 is checked");
  return s;
}

const sha256 = async (bytes) => new Uint8Array(await subtle().digest("SHA-256", bytes));

/** The Ajv 2020-12 class: an option, ajv-dist's browser bundle (window.ajv2020), or a
 * bundler's copy of ajv (the package's dependency). */
async function ajvClass(given) {
  if (given) return given;
  const global = globalThis.ajv2020;
  if (global) return global.default ?? global;
  try {
    const mod = await import("ajv/dist/2020.js");
    return mod.default?.default ?? mod.default ?? mod;
  } catch (err) {
    throw new ConfigError("ajv is not loaded: use a bundler (ajv is a dependency of edgegen-runtime), load ajv-dist's dist/ajv2020.min.js before the page's module, or pass { Ajv }", { cause: err });
  }
}

async function fetchLimited(fetchFn, url, limit, what) {
  let response;
  try {
    response = await fetchFn(url, { cache: "no-store" });
  } catch (err) {
    throw new BundleError(`${what}: ${url} cannot be fetched (${err.message})`, { cause: err });
  }
  if (!response.ok) throw new BundleError(`${what}: ${url} answered HTTP ${response.status}`);
  if (!response.body?.getReader) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.length > limit ? bytes.subarray(0, limit) : bytes;
  }
  const reader = response.body.getReader();
  const parts = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.length;
    if (size >= limit) { await reader.cancel(); break; }
  }
  const out = new Uint8Array(Math.min(size, limit));
  let at = 0;
  for (const p of parts) { out.set(p.subarray(0, out.length - at), at); at += Math.min(p.length, out.length - at); }
  return out;
}

/** An ECDSA verify(data, derSignature) for a PEM (SPKI) public key or a CryptoKey. */
async function webVerifier(publicKey) {
  const curves = [["P-256", "SHA-256", 32], ["P-384", "SHA-384", 48], ["P-521", "SHA-512", 66]];
  if (typeof publicKey === "object" && publicKey?.algorithm?.name === "ECDSA") {
    const [, hash, size] = curves.find(([c]) => c === publicKey.algorithm.namedCurve) ?? [];
    if (!hash) throw new ConfigError(`the public key's curve ${publicKey.algorithm.namedCurve} is not P-256, P-384 or P-521`);
    return async (data, sig) => subtle().verify({ name: "ECDSA", hash }, publicKey, derToP1363(sig, size), data);
  }
  const pem = typeof publicKey === "string" ? publicKey : new TextDecoder().decode(publicKey);
  let der;
  try {
    der = b64decode(pem.replace(/-----[^-]+-----/g, ""));
  } catch {
    throw new ConfigError("the public key is not PEM text (-----BEGIN PUBLIC KEY----- …)");
  }
  for (const [namedCurve, hash, size] of curves) {
    let key;
    try { key = await subtle().importKey("spki", der, { name: "ECDSA", namedCurve }, false, ["verify"]); } catch { continue; }
    return async (data, sig) => subtle().verify({ name: "ECDSA", hash }, key, derToP1363(sig, size), data);
  }
  throw new ConfigError("the public key is not a PEM P-256/P-384/P-521 EC public key");
}

/** `schema` (URL or object) compiled by ajv; by default the validator ajv compiled from the
 * packaged schema at `npm pack`, else (a checkout) the packaged schema URL compiled now. */
async function validator(schema, Ajv, fetchFn) {
  if (schema === undefined || schema === null) {
    const packed = await packagedValidator();
    if (packed) return packed.validate;
  }
  const [AjvClass, object] = await Promise.all([ajvClass(Ajv), loadSchema(schema, fetchFn)]);
  return compileSchema(AjvClass, object);
}

async function loadSchema(schema, fetchFn) {
  if (schema && typeof schema === "object" && !(schema instanceof URL)) return schema;
  const url = new URL(schema ?? SCHEMA_URL, globalThis.location?.href ?? SCHEMA_URL);
  const bytes = await fetchLimited(fetchFn, url, 4 << 20, "the bundle schema");
  return JSON.parse(new TextDecoder().decode(bytes));
}

/**
 * Check the bundle at `url` (a folder URL, relative to the page) and open it: a Generator on
 * onnxruntime-web. Options: publicKey (PEM text or an ECDSA CryptoKey: bundle.sig must verify
 * and sign exactly manifest.json + the files it lists), format ("onnx" | "ort"), provider
 * ("wasm", or "webgpu" with onnxruntime-web's webgpu build passed as `ort`), batchSize (64),
 * sessionOptions, schema (URL or object; default: the packaged bundle.schema.json), ort (the
 * onnxruntime-web module; default: import("onnxruntime-web")), Ajv, fetch, verifyAll (also fetch
 * and hash every listed file now, as the Node and Python readers do; default false).
 */
export async function loadBundle(url, options = {}) {
  const { publicKey = null, format = "onnx", provider = "wasm", batchSize = 64, sessionOptions = {}, schema, ort, Ajv, verifyAll = false } = options;
  const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  const base = new URL(String(url).endsWith("/") ? String(url) : `${url}/`, globalThis.location?.href);
  const [validate, manifestBytes] = await Promise.all([validator(schema, Ajv, fetchFn),
    fetchLimited(fetchFn, new URL(MANIFEST, base), MAX_MANIFEST_BYTES + 1, `no bundle at ${base}`)]);
  const where = new URL(MANIFEST, base).href;
  const manifest = parseManifest(manifestBytes, validate, where);
  checkNames(manifest, where);
  let signature = { status: "not checked", note: "a browser cannot list the folder: pass publicKey to check bundle.sig" };
  if (publicKey) {
    const sigBytes = await fetchLimited(fetchFn, new URL(SIGNATURE, base), 16 << 20, `${base} is not signed (no ${SIGNATURE}) and a public key was given: refusing an unsigned bundle`);
    signature = await checkSignature(new TextDecoder().decode(sigBytes), {
      verify: await webVerifier(publicKey), sha256, manifest, complete: false,
      files: new Map([[MANIFEST, hexOf(await sha256(manifestBytes))]]),
    });
  }
  checkContract(manifest, base.href);
  const read = async (rel) => {
    if (!Object.hasOwn(manifest.files, rel)) throw new BundleError(`${where} does not list ${JSON.stringify(rel)} under 'files'; only listed files are loaded`);
    const meta = manifest.files[rel];
    const bytes = await fetchLimited(fetchFn, new URL(rel, base), meta.bytes + 1, rel);
    const digest = hexOf(await sha256(bytes));
    if (bytes.length !== meta.bytes || digest !== meta.sha256) {
      throw new BundleError(`${new URL(rel, base)} has ${bytes.length} bytes, sha256 ${digest.slice(0, 16)}…; the manifest says ${meta.bytes} bytes, ${meta.sha256.slice(0, 16)}… — refusing it (restore the file or re-export the bundle)`);
    }
    return bytes;
  };
  if (verifyAll) for (const rel of Object.keys(manifest.files).sort()) await read(rel);
  let onnx = ort;
  if (!onnx) {
    try {
      onnx = await import("onnxruntime-web");
    } catch (err) {
      throw new ProviderError("onnxruntime-web cannot be imported: install it (a peer dependency) and, without a bundler, map it in an import map or pass { ort }", { cause: err });
    }
  }
  const g = new Generator({
    root: base.href.replace(/\/$/, ""), manifest, read, ort: onnx, signature, format, batchSize, provider,
    sessionOptions: { executionProviders: [provider], ...sessionOptions },
  });
  await g.session(g.defaultVariant);
  return g;
}

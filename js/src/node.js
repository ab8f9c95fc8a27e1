// edgegen-runtime for Node.js: loadBundle(folder) checks the bundle as edgegen.runtime's
// load_bundle does — manifest bounded and validated by the one JSON Schema (ajv), every named
// file listed, no symbolic link or special file at any level, nothing unlisted, every listed
// file's size and sha256, and with a public key bundle.sig (OpenSSF model signing) over exactly
// the folder's files — then returns a Generator whose sessions are made from checked bytes.
import { createHash, createPublicKey, KeyObject, verify as ecdsaVerify } from "node:crypto";
import { closeSync, constants as fsc, existsSync, fstatSync, lstatSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { BundleError, ConfigError, ProviderError } from "./errors.js";
import { Generator } from "./generator.js";
import {
  CACHE_DIRS, MANIFEST, MAX_MANIFEST_BYTES, SIGNATURE, checkContract, checkListing, checkNames, compileSchema, packagedValidator,
  parseManifest,
} from "./manifest.js";
import { checkSignature } from "./signature.js";

export * from "./index.js";

const PACKAGED_SCHEMA = new URL("../bundle.schema.json", import.meta.url); // copied in at `npm pack`
const CHECKOUT_SCHEMA = new URL("../../runtime/src/edgegen/runtime/bundle.schema.json", import.meta.url);

/** The path of the manifest's JSON Schema: in a checkout the one file, else the packed copy. */
export function schemaFile() {
  for (const url of [CHECKOUT_SCHEMA, PACKAGED_SCHEMA]) if (existsSync(url)) return fileURLToPath(url);
  throw new ConfigError("bundle.schema.json is missing from edgegen-runtime: reinstall the package (npm pack copies it in)");
}

let defaultValidator = null;

/** The validate function of the manifest's schema: `schema` (an object or a file) compiled by
 * ajv, else the validator ajv compiled from the packaged schema at `npm pack` (when its sha256
 * stamp is that file's), else — in a checkout — the one schema file compiled now. */
async function validator(schema) {
  if (schema !== undefined && schema !== null) {
    return compileSchema(await ajvClass(), typeof schema === "string" ? JSON.parse(readFileSync(schema, "utf8")) : schema);
  }
  defaultValidator ??= (async () => {
    const file = schemaFile();
    const text = readFileSync(file);
    const packed = await packagedValidator();
    if (packed && packed.sha256 === sha256Hex(text)) return packed.validate;
    return compileSchema(await ajvClass(), JSON.parse(text.toString("utf8")));
  })();
  return defaultValidator;
}

async function ajvClass() {
  const mod = await import("ajv/dist/2020.js");
  return mod.default?.default ?? mod.default;
}

const sha256Hex = (bytes) => createHash("sha256").update(bytes).digest("hex");

function safeParts(rel) {
  if (typeof rel !== "string" || rel === "" || rel.startsWith("/") || rel.includes("\\") || rel.includes("\0") || /^[A-Za-z]:/.test(rel)
      || rel.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new BundleError(`manifest path ${JSON.stringify(rel)} leaves the bundle; a bundle may only name files inside its own folder — the manifest was tampered with`);
  }
  return rel.split("/");
}

/** An fd of root/rel: no symbolic link at any level below root, a regular file (a fifo would
 * block the reader forever). */
function openRegular(root, rel) {
  const parts = safeParts(rel);
  let here = root;
  for (const part of parts.slice(0, -1)) {
    here = join(here, part);
    let st;
    try { st = lstatSync(here); } catch { break; }
    if (st.isSymbolicLink()) throw new BundleError(`${here} is a symbolic link; a bundle holds no links (one can point outside the bundle) — re-export or copy it again`);
  }
  const path = join(root, ...parts);
  let fd;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    if (err.code === "ENOENT") throw new BundleError(`${path} is listed in the manifest but missing; the bundle is incomplete — re-export or copy it again`);
    if (err.code === "ELOOP") throw new BundleError(`${path} is a symbolic link (to ${readlinkSync(path)}); a bundle holds no links (one can point outside the bundle) — replace it by the file or re-export`);
    throw new BundleError(`${path} cannot be read (${err.code})`);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new BundleError(`${path} is not a regular file; a bundle holds only files and folders — re-export or copy it again`);
  }
  return { fd, path };
}

/** At most `limit` bytes of root/rel (the caller compares the length). */
function readRegular(root, rel, limit) {
  const { fd } = openRegular(root, rel);
  try {
    const size = Math.min(fstatSync(fd).size, limit);
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const got = readSync(fd, out, at, size - at, at);
      if (got === 0) break;
      at += got;
    }
    return out.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/** Every regular file under root (bundle-relative), refusing links and special files; the
 * cache folders at the top are not entered. */
function scan(root, dir = "", found = new Set()) {
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = dir ? `${dir}/${name}` : name;
    const full = join(root, rel);
    const st = lstatSync(full);
    if (st.isSymbolicLink()) throw new BundleError(`${full} is a symbolic link (to ${readlinkSync(full)}); a bundle holds only regular files and folders — a link can point outside it. Replace it by the file or re-export`);
    if (st.isDirectory()) {
      if (!(dir === "" && CACHE_DIRS.includes(name))) scan(root, rel, found);
    } else if (st.isFile()) found.add(rel);
    else throw new BundleError(`${full} is not a regular file (a fifo, socket or device); remove it — a bundle holds only files and folders`);
  }
  return found;
}

/** ECDSA verification with a PEM public key (the hash follows the curve, as model_signing). */
function ecdsaVerifier(publicKey) {
  let key;
  try {
    if (publicKey instanceof KeyObject) key = publicKey;
    else {
      const pem = typeof publicKey === "string" && !publicKey.includes("-----BEGIN") ? readFileSync(publicKey) : publicKey;
      key = createPublicKey(pem);
    }
  } catch (err) {
    throw new ConfigError(`the public key is not a readable PEM public key (${err.code ?? err.message}); pass the PEM text, its path or a KeyObject of the key matching the signing key`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const hash = { prime256v1: "sha256", secp384r1: "sha384", secp521r1: "sha512" }[curve];
  if (key.type !== "public" || key.asymmetricKeyType !== "ec" || !hash) {
    throw new ConfigError(`the public key is not a P-256/P-384/P-521 EC public key (found ${key.type} ${key.asymmetricKeyType} ${curve ?? ""})`);
  }
  return async (data, der) => ecdsaVerify(hash, data, key, der);
}

function checkFile(root, rel, meta, bytes) {
  if (bytes.length !== meta.bytes) throw new BundleError(`${join(root, rel)} is ${bytes.length} bytes, the manifest says ${meta.bytes}: the file was changed or truncated`);
  const digest = sha256Hex(bytes);
  if (digest !== meta.sha256) {
    throw new BundleError(`${join(root, rel)} has sha256 ${digest.slice(0, 16)}…, the manifest says ${meta.sha256.slice(0, 16)}…: the file was changed after export — re-export the bundle or restore the file`);
  }
  return digest;
}

/**
 * Check the bundle folder `root` (see the module comment) and open it: a Generator on
 * onnxruntime-node's `provider` (default "cpu"). Options: publicKey (PEM text, its path or a
 * KeyObject: bundle.sig must verify over exactly the folder's files), format ("onnx" or "ort":
 * the ORT-format models the manifest's ort_format section lists), batchSize (64), sessionOptions
 * (onnxruntime-node's, e.g. { intraOpNumThreads: 1 }), schema (a schema object or file instead of
 * the packaged one), ort (an onnxruntime module to use instead of onnxruntime-node).
 */
export async function loadBundle(root, options = {}) {
  const { publicKey = null, format = "onnx", provider = "cpu", batchSize = 64, sessionOptions = {}, schema, ort } = options;
  const bundle = await openBundle(root, { schema });
  const digests = new Map([[MANIFEST, sha256Hex(bundle.manifestBytes)]]);
  const files = Object.entries(bundle.manifest.files).sort(([a], [b]) => (a < b ? -1 : 1));
  const read = files.map(([rel, meta]) => [rel, meta, readRegular(root, rel, meta.bytes + 1)]);
  for (const [rel, , bytes] of read) digests.set(rel, sha256Hex(bytes));
  let signature = { status: bundle.found.has(SIGNATURE) ? "signed, not checked" : "unsigned" };
  if (publicKey) { // before the hashes: a consistently re-hashed bundle is named as a signature mismatch
    const verify = ecdsaVerifier(publicKey); // an unusable key is a ConfigError first, as in Python
    if (!bundle.found.has(SIGNATURE)) throw new BundleError(`${root} is not signed (no ${SIGNATURE}) and a public key was given: refusing an unsigned bundle — sign it with \`edgegen sign\` or get the signed copy`);
    signature = await checkSignature(readRegular(root, SIGNATURE, 16 << 20).toString("utf8"), {
      verify, sha256: async (b) => createHash("sha256").update(b).digest(),
      files: digests, manifest: bundle.manifest, complete: true,
    });
  }
  for (const [rel, meta, bytes] of read) checkFile(root, rel, meta, bytes);
  checkContract(bundle.manifest, root);
  const onnx = ort ?? (await importOrt());
  const g = new Generator({
    root, manifest: bundle.manifest, read: async (rel) => bundle.read(rel), ort: onnx, signature, format, batchSize, provider,
    sessionOptions: { executionProviders: [provider], ...sessionOptions },
  });
  await g.session(g.defaultVariant); // fail now on a provider or model problem
  return g;
}

async function importOrt() {
  try {
    return await import("onnxruntime-node");
  } catch (err) {
    throw new ProviderError(`onnxruntime-node is not installed (${err.code ?? err.message}): npm install onnxruntime-node (a peer dependency of edgegen-runtime)`, { cause: err });
  }
}

/**
 * The checks of loadBundle up to the file listing, without ONNX Runtime: { manifest,
 * manifestBytes, found, read(rel) } — read(rel) returns a listed file's bytes after checking
 * their size and sha256 against the manifest.
 */
export async function openBundle(root, { schema } = {}) {
  let st;
  try { st = statSync(root); } catch { st = null; }
  if (!st?.isDirectory()) throw new BundleError(`${root} ${st ? "is not a folder" : "does not exist"}: expected a bundle made by \`edgegen export\``);
  let manifestBytes;
  try {
    manifestBytes = readRegular(root, MANIFEST, MAX_MANIFEST_BYTES + 1);
  } catch (err) {
    if (!existsSync(join(root, MANIFEST)) && !(err.message ?? "").includes("symbolic")) throw new BundleError(`${root} has no ${MANIFEST}: expected a bundle made by \`edgegen export\``);
    throw err;
  }
  const manifest = parseManifest(manifestBytes, await validator(schema), join(root, MANIFEST));
  checkNames(manifest, join(root, MANIFEST));
  const found = scan(root);
  checkListing(manifest, found, root);
  const read = (rel) => {
    if (!Object.hasOwn(manifest.files, rel)) throw new BundleError(`${join(root, MANIFEST)} does not list ${JSON.stringify(rel)} under 'files'; a bundle reader loads only listed files — re-export`);
    const meta = manifest.files[rel];
    const bytes = readRegular(root, rel, meta.bytes + 1);
    if (bytes.length !== meta.bytes || sha256Hex(bytes) !== meta.sha256) {
      throw new BundleError(`${join(root, rel)} changed since the bundle was checked — refusing to load it (restore the file or re-export the bundle)`);
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  };
  return { root, manifest, manifestBytes, found, read };
}

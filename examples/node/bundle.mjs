// Open an edgegen bundle in Node.js with the same rules as edgegen.runtime: manifest.json is
// bounded, validated against edgegen/runtime/bundle.schema.json (the one schema file, read from
// the package folder) with ajv; every file the manifest names is listed; the folder holds no
// symbolic link, no special file and nothing unlisted; every listed file has its size and
// sha256; with a public key, bundle.sig (OpenSSF model signing) must verify over exactly these
// files. Models and goldens are read once, checked, and used from those bytes.

import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, readdirSync, readlinkSync, constants as fs } from "node:fs";
import { join } from "node:path";

import Ajv2020 from "ajv/dist/2020.js";
import * as ort from "onnxruntime-node";

import {
  CACHE_DIRS, MANIFEST, MAX_MANIFEST_BYTES, SIGNATURE, checkContract, checkListing, checkNames, checkSignature,
  compileSchema, createGenerator, parseManifest, safeRelative,
} from "../js/edgegen.mjs";

/** The schema file Python ships in its package (never a copy); EDGEGEN_BUNDLE_SCHEMA overrides. */
export const SCHEMA_FILE = process.env.EDGEGEN_BUNDLE_SCHEMA
  ?? new URL("../../runtime/src/edgegen/runtime/bundle.schema.json", import.meta.url);
let validator = null;
const schemaValidator = () => (validator ??= compileSchema(Ajv2020, JSON.parse(readFileSync(SCHEMA_FILE, "utf8"))));

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** The bytes of root/rel: no symbolic link at any level, a regular file, at most `limit` bytes. */
function readRegular(root, rel, limit = Infinity) {
  const parts = safeRelative(rel).split("/");
  let here = root;
  for (const part of parts.slice(0, -1)) {
    here = join(here, part);
    let st;
    try { st = lstatSync(here); } catch { break; }
    if (st.isSymbolicLink()) throw new Error(`${here} is a symbolic link; a bundle holds no links`);
  }
  const path = join(root, ...parts);
  let fd;
  try {
    fd = openSync(path, fs.O_RDONLY | fs.O_NOFOLLOW | fs.O_NONBLOCK);
  } catch (err) {
    if (err.code === "ENOENT") throw new Error(`${path} is listed in the manifest but missing`);
    if (err.code === "ELOOP") throw new Error(`${path} is a symbolic link (to ${readlinkSync(path)}); a bundle holds no links`);
    throw new Error(`${path} cannot be read (${err.code})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.size > limit) throw new Error(`${path} is ${st.size} bytes, more than the ${limit} allowed`);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Every regular file under root (bundle-relative), refusing links and special files; the
 * cache folders at the top are not entered. */
function scan(root, dir = "", found = new Set()) {
  for (const name of readdirSync(join(root, dir)).sort()) {
    const rel = dir ? `${dir}/${name}` : name;
    const st = lstatSync(join(root, rel));
    if (st.isSymbolicLink()) throw new Error(`${join(root, rel)} is a symbolic link (to ${readlinkSync(join(root, rel))}); a bundle holds only regular files and folders`);
    if (st.isDirectory()) {
      if (!(dir === "" && CACHE_DIRS.includes(name))) scan(root, rel, found);
    } else if (st.isFile()) found.add(rel);
    else throw new Error(`${join(root, rel)} is not a regular file (a fifo, socket or device)`);
  }
  return found;
}

/** ECDSA verification with a PEM public key (the hash follows the curve, as model_signing). */
function ecdsaVerifier(publicKeyPem) {
  const key = createPublicKey(publicKeyPem);
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const hash = { prime256v1: "sha256", secp384r1: "sha384", secp521r1: "sha512" }[curve];
  if (key.asymmetricKeyType !== "ec" || !hash) throw new Error(`the public key is not a P-256/P-384/P-521 EC key (${key.asymmetricKeyType} ${curve ?? ""})`);
  return async (data, der) => cryptoVerify(hash, data, key, der);
}

/**
 * Check the bundle at `root`; returns { manifest, read, signature } where read(rel) gives the
 * checked bytes of a listed file (read once, size and sha256 compared). With `publicKey` (a PEM
 * file) the bundle must be signed by it over exactly its files. Throws an Error saying what is
 * wrong.
 */
export async function loadBundle(root, { publicKey = null } = {}) {
  let manifestBytes;
  try {
    manifestBytes = readRegular(root, MANIFEST, MAX_MANIFEST_BYTES + 1);
  } catch (err) {
    throw new Error(`${root} is not an edgegen bundle (manifest.json: ${err.message})`);
  }
  const manifest = parseManifest(manifestBytes, schemaValidator(), join(root, MANIFEST));
  checkContract(manifest);
  checkNames(manifest);
  const found = scan(root);
  checkListing(manifest, found);
  const digests = new Map([[MANIFEST, sha256(manifestBytes)]]);
  for (const [rel, meta] of Object.entries(manifest.files).sort()) {
    const bytes = readRegular(root, rel);
    if (bytes.length !== meta.bytes) throw new Error(`${join(root, rel)} is ${bytes.length} bytes, the manifest says ${meta.bytes}`);
    const digest = sha256(bytes);
    if (digest !== meta.sha256) throw new Error(`${join(root, rel)} has sha256 ${digest}, the manifest says ${meta.sha256}: the file was changed after export`);
    digests.set(rel, digest);
  }
  let signature = { status: found.has(SIGNATURE) ? "signed, not checked" : "unsigned" };
  if (publicKey) {
    if (!found.has(SIGNATURE)) throw new Error(`${root} is not signed (no ${SIGNATURE}) and a public key was given: refusing an unsigned bundle`);
    signature = await checkSignature(readRegular(root, SIGNATURE).toString("utf8"), {
      verify: ecdsaVerifier(readFileSync(publicKey)), sha256: async (b) => createHash("sha256").update(b).digest(),
      files: digests, manifest, complete: true,
    });
  }
  function read(rel) {
    const meta = manifest.files[safeRelative(rel)];
    if (!meta) throw new Error(`the manifest does not list ${rel}; only listed files are loaded`);
    const bytes = readRegular(root, rel, meta.bytes);
    if (bytes.length !== meta.bytes || sha256(bytes) !== meta.sha256) throw new Error(`${join(root, rel)} changed since the bundle was checked: refusing to load it`);
    return bytes;
  }
  return { manifest, read, signature };
}

/** A generator (see ../js/edgegen.mjs) over a verified bundle's `variant` model, on the CPU; the
 * sessions are created from the checked bytes, never by reopening a path. */
export async function openGenerator(root, { variant = "fp32", evaluator = false, publicKey = null } = {}) {
  const bundle = await loadBundle(root, { publicKey });
  const { manifest, read } = bundle;
  const entry = manifest.variants[variant];
  if (!entry) throw new Error(`${root} has no ${variant} variant; it has ${Object.keys(manifest.variants).join(", ")}`);
  const options = { executionProviders: ["cpu"] };
  const session = await ort.InferenceSession.create(read(entry.file), options);
  const evSession = evaluator && manifest.evaluator
    ? await ort.InferenceSession.create(read(manifest.evaluator.file), options) : null;
  return { ...bundle, session, generator: createGenerator(ort, manifest, session, evSession) };
}

export { ort };

// bundle.sig: OpenSSF model signing's Sigstore bundle (JSON), checked with a public key as
// edgegen.runtime.signature does with model_signing. Its DSSE envelope signs an in-toto
// statement whose predicate.resources list {name, algorithm: "sha256", digest} for every file of
// the folder but bundle.sig and the cache folders — manifest.json included. The platform brings
// the ECDSA check (Node: crypto.verify on DER; WebCrypto: P1363 r||s, see derToP1363) and sha256.
import { BundleError } from "./errors.js";
import { MANIFEST } from "./manifest.js";

const IN_TOTO = "application/vnd.in-toto+json";
const STATEMENT = "https://in-toto.io/Statement/v1";
const PREDICATE = "https://model_signing/signature/v1.0";
const MEDIA_TYPES = ["application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.3"];

export function b64decode(text) {
  const bin = atob(String(text).replace(/\s+/g, ""));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

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
  const bad = () => new BundleError("bundle.sig: the signature is not a DER ECDSA signature");
  const expect = (tag) => { if (der[pos++] !== tag) throw bad(); };
  const length = () => {
    let n = der[pos++];
    if (n & 0x80) { const k = n & 0x7f; n = 0; for (let i = 0; i < k; i++) n = (n << 8) | der[pos++]; }
    if (!(n >= 0) || pos + n > der.length) throw bad();
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
    if (n > size) throw new BundleError("bundle.sig: an ECDSA integer is too long for the key");
    out.set(der.subarray(start, start + n), half * size + size - n);
  }
  return out;
}

function parseEnvelope(sigText) {
  let sig;
  try {
    sig = JSON.parse(sigText);
  } catch (err) {
    throw new BundleError(`bundle.sig is not JSON (${err.message}); the signature is damaged — sign the bundle again`);
  }
  const env = sig?.dsseEnvelope;
  if (!MEDIA_TYPES.includes(sig?.mediaType) || !env || env.payloadType !== IN_TOTO || !Array.isArray(env.signatures) || env.signatures.length !== 1) {
    throw new BundleError("bundle.sig is not a model_signing Sigstore bundle with one DSSE signature");
  }
  return env;
}

function signedDigests(statement) {
  const pred = statement?.predicate ?? {};
  if (statement?._type !== STATEMENT || statement.predicateType !== PREDICATE || pred.serialization?.method !== "files"
      || pred.serialization?.hash_type !== "sha256" || !Array.isArray(pred.resources)) {
    throw new BundleError("bundle.sig signs a statement this reader does not know (expected model_signing v1.0, files, sha256)");
  }
  const signed = new Map();
  const concat = [];
  for (const r of pred.resources) {
    if (r?.algorithm !== "sha256" || typeof r.digest !== "string" || !/^[0-9a-f]{64}$/.test(r.digest) || typeof r.name !== "string") {
      throw new BundleError(`bundle.sig: resource ${JSON.stringify(r?.name)} has no sha256 digest`);
    }
    signed.set(r.name, r.digest);
    for (let i = 0; i < 64; i += 2) concat.push(parseInt(r.digest.slice(i, i + 2), 16));
  }
  return { signed, concat: Uint8Array.from(concat) };
}

/**
 * Check `sigText` (bundle.sig) the way model_signing does: the signature over PAE(type,
 * payload) by `verify(data, derSignature)` (async: true when the platform's ECDSA accepts it),
 * the statement, its root digest (sha256 of the concatenated resource digests), and then that
 * the signed files are exactly the bundle: `files` maps the bundle-relative files the reader
 * hashed itself (manifest.json included) to their sha256. `complete` (the reader listed the
 * folder): the two sets must be equal. Otherwise (a browser, which cannot list a folder):
 * manifest.json's digest must match and the signed list must be the manifest's `files` plus
 * manifest.json, digest for digest — the manifest then vouches for every file the reader loads.
 */
export async function checkSignature(sigText, { verify, sha256, files, manifest, complete }) {
  const env = parseEnvelope(sigText);
  const payload = b64decode(env.payload);
  if (!(await verify(pae(env.payloadType, payload), b64decode(env.signatures[0].sig)))) {
    throw new BundleError("bundle.sig does not verify with this public key: wrong key, or a forged signature — refusing the bundle");
  }
  let statement;
  try {
    statement = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw new BundleError("bundle.sig: the signed payload is not a JSON in-toto statement");
  }
  const { signed, concat } = signedDigests(statement);
  if (statement.subject?.[0]?.digest?.sha256 !== hexOf(await sha256(concat))) {
    throw new BundleError("bundle.sig: the statement's root digest does not match its resources");
  }
  const expected = complete ? files
    : new Map([...Object.entries(manifest.files).map(([k, v]) => [k, v.sha256]), [MANIFEST, files.get(MANIFEST)]]);
  const problems = [];
  for (const [rel, digest] of [...expected].sort()) {
    if (!signed.has(rel)) problems.push(`not signed: ${rel}`);
    else if (signed.get(rel) !== digest) problems.push(`${rel} differs from the signed file`);
  }
  for (const rel of [...signed.keys()].sort()) if (!expected.has(rel)) problems.push(`signed but missing: ${rel}`);
  if (problems.length) throw new BundleError(`the files differ from what was signed — ${problems.join("; ")}; refusing the bundle`);
  return { status: "verified", files: signed.size, method: "OpenSSF model signing (ECDSA, Sigstore bundle, DSSE in-toto)", complete: Boolean(complete) };
}

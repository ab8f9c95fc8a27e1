// Open an edgegen bundle in Node.js the way edgegen.runtime does: check the manifest's schema,
// latent and uint8 rule, refuse paths that leave the bundle, check every listed file's size and
// sha256, then create ONNX Runtime sessions on the CPU.

import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";

import * as ort from "onnxruntime-node";

import { checkContract, createGenerator, safeRelative } from "../js/edgegen.mjs";

/** The manifest of `root`, after every check; throws an Error saying what is wrong. */
export function loadBundle(root) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(root, "manifest.json"), "utf8"));
  } catch (err) {
    throw new Error(`${root} is not an edgegen bundle (manifest.json: ${err.message})`);
  }
  checkContract(manifest);
  for (const [rel, meta] of Object.entries(manifest.files)) {
    const path = join(root, safeRelative(rel));
    let size;
    try { size = statSync(path).size; } catch { throw new Error(`${path} is listed in the manifest but missing`); }
    if (size !== meta.bytes) throw new Error(`${path} is ${size} bytes, the manifest says ${meta.bytes}`);
    const digest = createHash("sha256").update(readFileSync(path)).digest("hex");
    if (digest !== meta.sha256) throw new Error(`${path} has sha256 ${digest}, the manifest says ${meta.sha256}: the file was changed after export`);
  }
  const named = [...Object.values(manifest.variants).map((v) => v.file), manifest.evaluator?.file].filter(Boolean);
  for (const rel of named) {
    if (!(safeRelative(rel) in manifest.files)) throw new Error(`the manifest names ${rel} without its sha256`);
  }
  return manifest;
}

/** A generator (see ../js/edgegen.mjs) over a verified bundle's `variant` model, on the CPU. */
export async function openGenerator(root, { variant = "fp32", evaluator = false } = {}) {
  const manifest = loadBundle(root);
  const entry = manifest.variants[variant];
  if (!entry) throw new Error(`${root} has no ${variant} variant; it has ${Object.keys(manifest.variants).join(", ")}`);
  const options = { executionProviders: ["cpu"] };
  const session = await ort.InferenceSession.create(join(root, entry.file), options);
  const evSession = evaluator && manifest.evaluator
    ? await ort.InferenceSession.create(join(root, manifest.evaluator.file), options) : null;
  return { manifest, session, generator: createGenerator(ort, manifest, session, evSession) };
}

export { ort };

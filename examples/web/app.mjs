// The browser example: load a bundle over HTTP, validate manifest.json against the one JSON
// Schema (served from the Python package by serve.py) with ajv, check the bundle's signature
// when given a public key, fetch only files the manifest lists and check the sha256 of each
// against it, draw an image for (label, seed) on a canvas of the image's size (MNIST: 28x28) and show the evaluator's verdict.
// URL parameters: bundle (default /bundle/), schema (default /schema/bundle.schema.json),
// public_key (a PEM's URL: bundle.sig must verify with it), label, seed, variant, guard=1,
// auto=1 (generate at once); pairs=7:42,3:0 with report=/report makes a test run each pair and
// POST what the canvas shows.

import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

import {
  MANIFEST, b64decode, checkContract, checkNames, checkSignature, compileSchema, createGenerator, derToP1363,
  parseManifest, parseSeed, safeRelative,
} from "../js/edgegen.mjs";

ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation; deterministic

const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get("bundle") ?? "/bundle/", location.href);
const $ = (id) => document.getElementById(id);

const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** ECDSA verification with a PEM public key through WebCrypto (P1363 signatures). */
async function webVerifier(pem) {
  const der = b64decode(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""));
  for (const [namedCurve, hash, size] of [["P-256", "SHA-256", 32], ["P-384", "SHA-384", 48], ["P-521", "SHA-512", 66]]) {
    let key;
    try { key = await crypto.subtle.importKey("spki", der, { name: "ECDSA", namedCurve }, false, ["verify"]); } catch { continue; }
    return async (data, sig) => crypto.subtle.verify({ name: "ECDSA", hash }, key, derToP1363(sig, size), data);
  }
  throw new Error("the public key is not a PEM P-256/P-384/P-521 EC public key");
}

async function fetchBytes(url, what) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function fetchVerified(manifest, rel) {
  const meta = Object.hasOwn(manifest.files, safeRelative(rel)) ? manifest.files[rel] : null;
  if (!meta) throw new Error(`the manifest does not list ${rel}: the page loads only listed files`);
  const response = await fetch(new URL(rel, bundleUrl));
  if (!response.ok) throw new Error(`${rel}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
    (b) => b.toString(16).padStart(2, "0")).join("");
  if (bytes.length !== meta.bytes || digest !== meta.sha256) {
    throw new Error(`${rel} has sha256 ${digest.slice(0, 16)}…, the manifest says ${meta.sha256.slice(0, 16)}…: refusing it`);
  }
  return bytes;
}

async function openBundle() {
  const Ajv = window.ajv2020?.default ?? window.ajv2020;
  if (!Ajv) throw new Error("ajv is not loaded (examples/web: npm ci --ignore-scripts)");
  const schemaUrl = new URL(params.get("schema") ?? "/schema/bundle.schema.json", location.href);
  const validate = compileSchema(Ajv, JSON.parse(new TextDecoder().decode(await fetchBytes(schemaUrl, "the bundle schema"))));
  const manifestBytes = await fetchBytes(new URL(MANIFEST, bundleUrl), `no bundle at ${bundleUrl} (manifest.json)`);
  const manifest = parseManifest(manifestBytes, validate); // before anything reads a field
  checkContract(manifest);
  checkNames(manifest);
  let signature = { status: "not checked" };
  if (params.get("public_key")) {
    const pem = new TextDecoder().decode(await fetchBytes(new URL(params.get("public_key"), location.href), "the public key"));
    const sigText = new TextDecoder().decode(await fetchBytes(new URL("bundle.sig", bundleUrl), "bundle.sig (the bundle is not signed?)"));
    signature = await checkSignature(sigText, {
      verify: await webVerifier(pem), sha256, manifest, complete: false,
      files: new Map([[MANIFEST, hexOf(await sha256(manifestBytes))]]),
    });
  }
  const options = { executionProviders: ["wasm"] };
  const evaluator = manifest.evaluator
    ? await ort.InferenceSession.create(await fetchVerified(manifest, manifest.evaluator.file), options) : null;
  const sessions = {};
  async function generator(variant) {
    const entry = manifest.variants[variant];
    if (!entry) throw new Error(`the bundle has no ${variant} model`);
    sessions[variant] ??= await ort.InferenceSession.create(await fetchVerified(manifest, entry.file), options);
    return createGenerator(ort, manifest, sessions[variant], evaluator);
  }
  return { manifest, generator, hasEvaluator: evaluator !== null, signature };
}

/**
 * Draw uint8 pixels ([H, W] grey or [H, W, 3] RGB, as the runtime returns them) on a canvas of
 * the image's size, then read back what the canvas holds, in the same layout.
 */
function draw(u8, [c, h, w] = [1, 28, 28]) {
  const canvas = $("canvas");
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const px = c === 3 ? [u8[3 * i], u8[3 * i + 1], u8[3 * i + 2]] : [u8[i], u8[i], u8[i]];
    image.data.set([...px, 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  const shown = ctx.getImageData(0, 0, w, h).data;
  const out = new Uint8Array(u8.length);
  for (let i = 0; i < w * h; i++) {
    if (c === 3) {
      out.set([shown[4 * i], shown[4 * i + 1], shown[4 * i + 2]], 3 * i);
    } else {
      if (shown[4 * i] !== shown[4 * i + 1] || shown[4 * i] !== shown[4 * i + 2]) throw new Error("canvas is not gray");
      out[i] = shown[4 * i];
    }
  }
  return out;
}

function showVerdict(result) {
  const v = result.verdicts?.[0];
  const el = $("verdict");
  if (!v) { el.textContent = "(this bundle has no evaluator: no verdict)"; el.className = ""; return; }
  const tries = result.attempts[0] ? `, after ${result.attempts[0]} redraw${result.attempts[0] > 1 ? "s" : ""}` : "";
  el.textContent = `evaluator: looks like ${v.predicted} (p = ${v.prob.toFixed(3)}) — ${v.accepted ? "accepted" : "rejected"}${tries}`;
  el.className = v.accepted ? "accepted" : "rejected";
}

async function generateOne(bundle, label, seed, variant, guard) {
  const gen = await bundle.generator(variant);
  const result = await gen.generate([label], parseSeed(seed), { guard });
  const canvas = draw(result.u8, result.shape);
  showVerdict(result);
  return { result, canvas };
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

async function runPairs(bundle, variant, guard) {
  const out = [];
  for (const pair of params.get("pairs").split(",")) {
    const [label, seed] = pair.split(":");
    const { result, canvas } = await generateOne(bundle, Number(label), seed, variant, guard);
    out.push({
      label: Number(label), seed, variant, guard, canvas_hex: hex(canvas),
      attempts: result.attempts[0], verdict: result.verdicts?.[0] ?? null,
    });
  }
  return out;
}

async function main() {
  $("bundle").textContent = bundleUrl.href;
  const bundle = await openBundle();
  const { manifest } = bundle;
  $("label").innerHTML = manifest.generator.labels.map((name, i) => `<option value="${i}">${name}</option>`).join("");
  $("variant").innerHTML = Object.keys(manifest.variants).map((v) => `<option>${v}</option>`).join("");
  $("label").value = params.get("label") ?? "7";
  $("seed").value = params.get("seed") ?? "42";
  $("variant").value = params.get("variant") ?? "fp32";
  $("guard").checked = params.get("guard") === "1";
  $("guard").disabled = !bundle.hasEvaluator;
  const variant = () => $("variant").value;
  const guard = () => bundle.hasEvaluator && $("guard").checked;
  if (params.get("pairs") && window.__report) {
    const results = await runPairs(bundle, variant(), guard());
    $("status").textContent = `generated ${results.length} digits`;
    await fetch(window.__report, { method: "POST", body: JSON.stringify({ onnxruntime_web: ort.env.versions.web, signature: bundle.signature, results }) });
    return;
  }
  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("go").disabled = true;
    try {
      const seed = parseSeed($("seed").value);
      await generateOne(bundle, Number($("label").value), seed, variant(), guard());
      $("status").textContent = `digit ${$("label").value}, seed ${seed}, ${variant()}`;
      $("status").className = "";
    } catch (err) {
      $("status").textContent = `error: ${err.message}`;
      $("status").className = "error";
    } finally {
      $("go").disabled = false;
    }
  });
  $("go").disabled = false;
  $("status").textContent = `ready: ${Object.keys(manifest.variants).join(", ")}${bundle.hasEvaluator ? " + evaluator" : ""}`;
  if (params.get("auto") === "1") $("form").requestSubmit();
}

main().catch((err) => window.__fail?.(`error: ${err.message}`) ?? console.error(err));

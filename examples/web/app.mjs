// The browser example: load a bundle over HTTP, check the sha256 of the models it runs against
// the manifest, draw a digit for (label, seed) on a 28x28 canvas and show the evaluator's verdict.
// URL parameters: bundle (default /bundle/), label, seed, variant, guard=1, auto=1 (generate at
// once); pairs=7:42,3:0 with report=/report makes a test run each pair and POST what the canvas
// shows.

import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

import { checkContract, createGenerator, parseSeed, safeRelative } from "../js/edgegen.mjs";

ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation; deterministic

const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get("bundle") ?? "/bundle/", location.href);
const $ = (id) => document.getElementById(id);

async function fetchVerified(manifest, rel) {
  const meta = manifest.files[safeRelative(rel)];
  if (!meta) throw new Error(`the manifest names ${rel} without its sha256`);
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
  const response = await fetch(new URL("manifest.json", bundleUrl));
  if (!response.ok) throw new Error(`no bundle at ${bundleUrl} (manifest.json: HTTP ${response.status})`);
  const manifest = await response.json();
  checkContract(manifest);
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
  return { manifest, generator, hasEvaluator: evaluator !== null };
}

/** Draw uint8 pixels on the canvas, then read back what the canvas holds (one byte a pixel). */
function draw(u8) {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const image = ctx.createImageData(canvas.width, canvas.height);
  u8.forEach((v, i) => { image.data.set([v, v, v, 255], 4 * i); });
  ctx.putImageData(image, 0, 0);
  const shown = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const gray = new Uint8Array(u8.length);
  for (let i = 0; i < gray.length; i++) {
    if (shown[4 * i] !== shown[4 * i + 1] || shown[4 * i] !== shown[4 * i + 2]) throw new Error("canvas is not gray");
    gray[i] = shown[4 * i];
  }
  return gray;
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
  const canvas = draw(result.u8);
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
    await fetch(window.__report, { method: "POST", body: JSON.stringify({ onnxruntime_web: ort.env.versions.web, results }) });
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

// The browser example, a user of the edgegen-runtime package (no bundler: index.html's import
// map points "edgegen-runtime" and "onnxruntime-web" at node_modules): loadBundle validates
// manifest.json against the one JSON Schema (served from the Python package by serve.py, compiled
// by ajv-dist), checks the bundle's signature when given a public key, fetches only files the
// manifest lists and checks the sha256 of each; the page draws an image for (label, seed) on a
// canvas of the image's size (MNIST: 28x28) and shows the evaluator's verdict.
// URL parameters: bundle (default /bundle/), schema (default /schema/bundle.schema.json),
// public_key (a PEM's URL: bundle.sig must verify with it), label, seed, variant, guard=1,
// auto=1 (generate at once); pairs=7:42,3:0 with report=/report makes a test run each pair and
// POST what the canvas shows.

import * as ort from "onnxruntime-web";
import { loadBundle, parseSeed, toPixels } from "edgegen-runtime";

ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation; deterministic

const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get("bundle") ?? "/bundle/", location.href);
const $ = (id) => document.getElementById(id);

async function fetchText(url, what) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${what}: HTTP ${response.status}`);
  return response.text();
}

/** The package's loadBundle with the page's options: the schema file Python ships (served by
 * serve.py; ajv-dist compiles it), and with ?public_key= the publisher's PEM (bundle.sig must
 * verify with it, through WebCrypto). */
async function openBundle() {
  const publicKey = params.get("public_key")
    ? await fetchText(new URL(params.get("public_key"), location.href), "the public key") : null;
  const schema = new URL(params.get("schema") ?? "/schema/bundle.schema.json", location.href);
  return loadBundle(bundleUrl, { schema, publicKey, ort });
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

async function generateOne(g, label, seed, variant, guard) {
  const run = await g.run([label], { seed: parseSeed(seed), variant, guard, output: "float" });
  const verdicts = run.accepted ? run : g.hasEvaluator ? await g.judge(run.images, [label]) : null;
  const result = {
    u8: toPixels(run.images, g.imageShape), shape: g.imageShape, attempts: run.attempts ?? [0],
    verdicts: verdicts ? [{ predicted: verdicts.predicted[0], prob: verdicts.prob[0], accepted: verdicts.accepted[0] }] : null,
  };
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
  const signature = bundle.signature.status === "verified" ? bundle.signature : { status: "not checked" };
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
    await fetch(window.__report, { method: "POST", body: JSON.stringify({ onnxruntime_web: ort.env.versions.web, signature, results }) });
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

// The browser half of the package's tests: the cases of bundles.test.js in this page, with the
// packed package from /node_modules (its precompiled validator: no ajv on the page) and
// onnxruntime-web's single-threaded WebAssembly. Posts the report (or the error) to /report.
import * as ort from "onnxruntime-web";
import { loadBundle } from "edgegen-runtime";

import { runCases } from "../cases.js";

ort.env.wasm.wasmPaths = "/node_modules/onnxruntime-web/dist/";
ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation

async function post(body) {
  await fetch("/report", { method: "POST", body: JSON.stringify(body) });
}

async function main() {
  const cases = await (await fetch("/cases.json", { cache: "no-store" })).json();
  const results = await runCases(cases, (c) => loadBundle(`/bundles/${c.name}/`, { format: c.format ?? "onnx", verifyAll: true, ort }));
  document.getElementById("status").textContent = "done";
  await post({ reader: "browser", userAgent: navigator.userAgent, onnxruntime_web: ort.env.versions?.web, results });
}

main().catch((err) => post({ error: `${err.name}: ${err.message}` }));

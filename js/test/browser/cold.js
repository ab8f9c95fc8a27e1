// Cold start in a fresh browser profile (benchmarks/scripts/cold_start.py opens this page once
// per run): import the package and onnxruntime-web, load the bundle (?bundle=, every file it
// runs fetched and hashed), draw the first image; times from performance.now() (ms since the
// navigation started), posted to /report.
const t0 = performance.now();
const [ort, { loadBundle }] = await Promise.all([import("onnxruntime-web"), import("edgegen-runtime")]);
ort.env.wasm.wasmPaths = "/node_modules/onnxruntime-web/dist/";
ort.env.wasm.numThreads = 1;
const t1 = performance.now();
try {
  const g = await loadBundle(new URLSearchParams(location.search).get("bundle"), { ort });
  const t2 = performance.now();
  const u8 = await g.generate([7], { seed: 42 });
  const t3 = performance.now();
  const [, h, w] = g.imageShape;
  const image = new ImageData(w, h);
  u8.forEach((v, i) => image.data.set([v, v, v, 255], 4 * i));
  document.getElementById("c").getContext("2d").putImageData(image, 0, 0);
  await fetch("/report", { method: "POST", body: JSON.stringify({ boot_ms: t0, import_ms: t1 - t0, load_ms: t2 - t1, first_ms: t3 - t2, total_ms: t3, pixels: u8.length }) });
} catch (err) {
  await fetch("/report", { method: "POST", body: JSON.stringify({ error: `${err.name}: ${err.message}` }) });
}

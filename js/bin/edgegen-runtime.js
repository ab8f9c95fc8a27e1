#!/usr/bin/env node
// npx edgegen-runtime bench BUNDLE [--batch 1,8,64] [--json OUT]     the on-device benchmark
// npx edgegen-runtime check BUNDLE [--variant fp32] [--format ort]    goldens + latent vectors
// npx edgegen-runtime generate BUNDLE LABEL SEED OUT.png|OUT.pgm      one image, Python's bytes
// Every command checks the bundle first (schema, file rules, sha256; --public-key: bundle.sig).
// A bad bundle or option: its message on stderr, exit status 2; failed checks: exit status 1.
import { writeFileSync, renameSync } from "node:fs";
import { dirname, basename, join } from "node:path";

import { DEFAULTS, bench, render } from "../src/bench.js";
import { EdgegenError, checkGoldens, encodePgm, encodePng, loadBundle, parseSeed } from "../src/node.js";

const USAGE = "usage: edgegen-runtime bench|check|generate BUNDLE ... (see the package README)";

function atomicWrite(path, data) {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** `--name value` options (names from `defaults`) and positionals; a "-1" is a positional
 * (a seed of -1 must reach the seed check, not be taken for an option). */
function parseArgs(argv, defaults) {
  const values = { ...defaults };
  const positionals = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) { positionals.push(a); continue; }
    const name = a.slice(2);
    if (!Object.hasOwn(defaults, name)) throw new EdgegenError(`unknown option ${a}`);
    if (i + 1 >= argv.length) throw new EdgegenError(`${a} needs a value`);
    values[name] = argv[++i];
  }
  return { values, positionals };
}

const list = (text, cast = String) => text.split(",").filter(Boolean).map(cast);

async function benchCommand(argv) {
  const { values, positionals } = parseArgs(argv, {
    batch: DEFAULTS.batches.join(","), variant: "", format: DEFAULTS.format, provider: DEFAULTS.provider, threads: "0", spinning: "default",
    "warmup-iters": String(DEFAULTS.warmupIters), "warmup-s": String(DEFAULTS.warmupS), iters: undefined, duration: String(DEFAULTS.durationS),
    rounds: String(DEFAULTS.rounds), "noise-window": String(DEFAULTS.noiseWindowS), json: undefined,
  });
  if (positionals.length !== 1) throw new EdgegenError("usage: edgegen-runtime bench BUNDLE [--batch 1,8,64] [--variant fp32,int8] [--format onnx|ort] [--json OUT]");
  const report = await bench(positionals[0], {
    batches: list(values.batch, Number), variants: list(values.variant), format: values.format, provider: values.provider,
    threads: Number(values.threads), spinning: { on: true, off: false, default: null }[values.spinning],
    warmupIters: Number(values["warmup-iters"]), warmupS: Number(values["warmup-s"]), iters: values.iters === undefined ? null : Number(values.iters),
    durationS: Number(values.duration), rounds: Number(values.rounds), noiseWindowS: Number(values["noise-window"]),
    command: ["edgegen-runtime", "bench", ...argv].join(" "),
  }, (text) => process.stderr.write(`${text}\n`));
  console.log(render(report));
  if (values.json) {
    atomicWrite(values.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`report: ${values.json}`);
  }
  return report.passed ? 0 : 1;
}

async function checkCommand(argv) {
  const { values, positionals } = parseArgs(argv, { variant: "fp32", format: "onnx", "public-key": undefined });
  if (positionals.length !== 1) throw new EdgegenError("usage: edgegen-runtime check BUNDLE [--variant fp32] [--format onnx|ort] [--public-key K]");
  const g = await loadBundle(positionals[0], { format: values.format, publicKey: values["public-key"] ?? null });
  console.log(`bundle ${positionals[0]}: schema, file rules and ${Object.keys(g.manifest.files).length} sha256 ok; signature: ${g.signature.status}; onnxruntime-node ${g.ort.env?.versions?.node}`);
  const res = await checkGoldens(g, { variant: values.variant });
  for (const s of res.sets) {
    console.log(`golden ${s.dir}: batch ${s.batch}, max |diff| ${s.maxAbs.toExponential(2)} (atol ${s.atol.toExponential(0)}), z ${s.zExact === false ? "DIFFERS from" : "="} the portable latent ... ${s.ok ? "ok" : "FAIL"}`);
  }
  for (const v of res.vectors) console.log(`${v.what} test vector seed ${v.seed}: ${v.ok ? "ok" : "FAIL"}`);
  console.log(res.passed ? "all checks passed" : "CHECKS FAILED");
  await g.release();
  return res.passed ? 0 : 1;
}

async function generateCommand(argv) {
  const { values, positionals } = parseArgs(argv, { variant: undefined, truncation: undefined, format: "onnx", "public-key": undefined, steps: undefined, guidance: undefined });
  if (positionals.length !== 4) throw new EdgegenError("usage: edgegen-runtime generate BUNDLE LABEL SEED OUT.png|OUT.pgm [--variant fp32] [--truncation PSI]");
  const [bundle, label, seed, out] = positionals;
  if (!/^[0-9]+$/.test(label)) throw new EdgegenError(`LABEL must be a class index such as 7, got ${JSON.stringify(label)}`);
  if (!/\.(png|pgm|ppm)$/i.test(out)) throw new EdgegenError(`${out}: expected a .png, .pgm or .ppm file name`);
  const s = parseSeed(seed);
  const g = await loadBundle(bundle, { format: values.format, publicKey: values["public-key"] ?? null });
  const num = (v) => (v === undefined ? undefined : Number(v));
  const img = await g.generate([Number(label)], { seed: s, variant: values.variant, truncation: num(values.truncation) ?? null, steps: num(values.steps), guidance: num(values.guidance) });
  atomicWrite(out, (/\.png$/i.test(out) ? encodePng : encodePgm)(img, g.imageShape));
  console.log(`wrote ${out}: label ${label}, seed ${s}, ${values.variant ?? g.defaultVariant}`);
  await g.release();
  return 0;
}

const COMMANDS = { bench: benchCommand, check: checkCommand, generate: generateCommand };

async function main(argv) {
  const run = COMMANDS[argv[0]];
  if (!run) {
    console.error(argv[0] ? `edgegen-runtime: unknown command ${JSON.stringify(argv[0])}\n${USAGE}` : USAGE);
    return 2;
  }
  try {
    return await run(argv.slice(1));
  } catch (err) {
    if (!(err instanceof EdgegenError)) throw err;
    console.error(`error: ${err.message}`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));

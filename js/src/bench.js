// The on-device benchmark for Node.js (`npx edgegen-runtime bench BUNDLE`): the measurement of
// edgegen.runtime.bench (Python) with onnxruntime-node, and its JSON in the same shape — the
// shape `edgegen bench --json` writes and `edgegen bench --from-json` reads, with the device's
// rows as `edgegen` contenders and `source` naming this reader. Per batch size: each variant's
// session created (timed apart) from the checked bytes, run once, warmed up for at least
// warmupIters calls and warmupS seconds, then all variants timed in `rounds` interleaved,
// rotated blocks, every call on its own (process.hrtime.bigint, nanoseconds).
import { availableParallelism, cpus, loadavg, platform, release, arch, totalmem } from "node:os";
import { readFileSync } from "node:fs";

import { ConfigError } from "./errors.js";
import { latent } from "./latent.js";
import { sessionOptionsFor } from "./generator.js";
import { loadBundle } from "./node.js";

export const SOURCE = "edgegen-runtime bench (node)";
export const NOISE_THRESHOLDS = { others: 0.1, steal: 0.02, yardstick_spread: 0.15, freq_spread: 0.1 };
const ISA_FLAGS = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_tile",
  "amx_bf16", "amx_int8", "f16c", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16"];
export const DEFAULTS = {
  batches: [1, 8, 64], variants: [], format: "onnx", provider: "cpu", threads: 0, warmupIters: 10, warmupS: 0.3,
  iters: null, durationS: 1.0, rounds: 5, minIters: 5, seed: 2024, noiseWindowS: 1.0,
};

/** numpy's default percentile: linear interpolation between closest ranks. */
export function percentile(sorted, q) {
  const rank = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** LatencyStats's fields (milliseconds) of per-call durations in nanoseconds (BigInt or Number). */
export function latencyStats(samplesNs, batch) {
  if (!samplesNs.length) throw new RangeError("no timed samples");
  const ms = samplesNs.map((v) => Number(v) / 1e6);
  const sorted = [...ms].sort((a, b) => a - b);
  const total = ms.reduce((a, b) => a + b, 0);
  const mean = total / ms.length;
  const std = Math.sqrt(ms.reduce((a, b) => a + (b - mean) ** 2, 0) / ms.length);
  return {
    batch, count: ms.length, min_ms: sorted[0], mean_ms: mean, p50_ms: percentile(sorted, 50), p90_ms: percentile(sorted, 90),
    p95_ms: percentile(sorted, 95), p99_ms: percentile(sorted, 99), max_ms: sorted[sorted.length - 1], std_ms: std,
    total_s: total / 1e3, images_per_s: (batch * ms.length) / (total / 1e3),
  };
}

/** Round r's order: rotated by r, reversed every other round (edgegen.benchmarks.harness). */
export function rotation(names, r) {
  if (!names.length) return [];
  const k = r % names.length;
  const order = [...names.slice(k), ...names.slice(0, k)];
  return r % 2 ? order.reverse() : order;
}

const now = () => process.hrtime.bigint();

async function warmUp(fn, iters, seconds) {
  const start = now();
  let done = 0;
  while (done < iters || Number(now() - start) < seconds * 1e9) { await fn(); done++; }
  return [done, Number(now() - start) / 1e9];
}

async function timeBlock(fn, iters, seconds, minIters) {
  const out = [];
  const deadline = seconds === null ? null : now() + BigInt(Math.round(seconds * 1e9));
  for (;;) {
    const t0 = now();
    await fn();
    const t1 = now();
    out.push(t1 - t0);
    if (iters !== null && out.length >= iters) return out;
    if (deadline !== null && t1 >= deadline && out.length >= minIters) return out;
  }
}

function procLines(file) {
  try { return readFileSync(file, "utf8").split("\n"); } catch { return []; }
}

/** CPU model, ISA flags, cores, memory, OS, load. */
export function machineFacts() {
  const info = procLines("/proc/cpuinfo");
  const flagsLine = info.find((l) => /^(flags|features)\s*:/i.test(l));
  const have = new Set(flagsLine ? flagsLine.split(":")[1].trim().split(/\s+/) : []);
  const flags = ISA_FLAGS.filter((f) => have.has(f));
  const model = info.find((l) => /^model name\s*:/i.test(l))?.split(":")[1].trim() ?? cpus()[0]?.model ?? arch();
  return {
    cpu: model, cpu_flags: flags, isa: { avx2: have.has("avx2"), avx512: have.has("avx512f"), neon: have.has("asimd"), sve: have.has("sve") },
    logical_cores: cpus().length, usable_cores: availableParallelism(), ram_gib: totalmem() / 2 ** 30,
    os: `${platform()} ${release()}`, arch: arch(), node: process.versions.node, load_average: loadavg(),
  };
}

function snapshot() {
  const usage = process.cpuUsage();
  const snap = { t: performance.now() / 1e3, own_s: (usage.user + usage.system) / 1e6, busy: null, steal: null, total: null };
  const first = procLines("/proc/stat")[0];
  if (!first?.startsWith("cpu ")) return snap;
  const v = first.trim().split(/\s+/).slice(1).map(Number);
  while (v.length < 8) v.push(0);
  return { ...snap, busy: v[0] + v[1] + v[2] + v[5] + v[6], steal: v[7], total: v.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** Other processes' share of the CPU and the hypervisor's steal between marks (NoiseRecord's
 * shape), judged by edgegen.benchmarks.noise's thresholds. */
class Noise {
  constructor() { this.samples = []; this.last = snapshot(); }

  restart() { this.last = snapshot(); }

  mark(label, idle = false) {
    const [a, b] = [this.last, snapshot()];
    this.last = b;
    const seconds = Math.max(b.t - a.t, 1e-9);
    let others = null;
    let steal = null;
    if (a.busy !== null && b.busy !== null) {
      const hz = 100; // USER_HZ: /proc/stat counts in 1/100 s on Linux
      const capacity = (b.total - a.total) / hz || seconds * cpus().length;
      others = Math.max(0, ((b.busy - a.busy) / hz - (b.own_s - a.own_s)) / capacity);
      steal = (b.steal - a.steal) / hz / capacity;
    }
    this.samples.push({ label, seconds, others, steal, load_average: loadavg(), freq_mhz: null, matmul_gflops: null, idle });
  }

  async idle(label, seconds) {
    this.restart();
    await new Promise((r) => setTimeout(r, seconds * 1e3));
    this.mark(label, true);
  }

  record() {
    const worst = (key) => this.samples.filter((s) => s[key] !== null).reduce((w, s) => (w && w[0] >= s[key] ? w : [s[key], s.label]), null);
    const [others, steal] = [worst("others"), worst("steal")];
    const reasons = [];
    if (others && others[0] > NOISE_THRESHOLDS.others) reasons.push(`other processes used ${Math.round(others[0] * 100)}% of the CPU capacity (${others[1]}; threshold 10%)`);
    if (steal && steal[0] > NOISE_THRESHOLDS.steal) reasons.push(`the hypervisor stole ${(steal[0] * 100).toFixed(1)}% of the CPU time (${steal[1]}; threshold 2%)`);
    return {
      samples: this.samples, thresholds: { ...NOISE_THRESHOLDS }, server_on_this_machine: false, noisy: reasons.length > 0, reasons,
      summary: { others_max: others?.[0] ?? null, others_judged_on: "every interval", steal_max: steal?.[0] ?? null,
        load_average_first: this.samples[0]?.load_average ?? null, load_average_last: this.samples.at(-1)?.load_average ?? null },
    };
  }
}

function validate(cfg) {
  if (!["onnx", "ort"].includes(cfg.format)) throw new ConfigError(`--format takes onnx or ort, got ${JSON.stringify(cfg.format)}`);
  if (!cfg.batches.length || !cfg.batches.every((b) => Number.isInteger(b) && b >= 1)) throw new ConfigError(`--batch needs positive batch sizes, got [${cfg.batches}]`);
  if (!(cfg.rounds >= 1) || (cfg.iters !== null && !(cfg.iters >= 1))) throw new ConfigError("--rounds and --iters must be at least 1");
  if (cfg.iters === null && !(cfg.durationS > 0)) throw new ConfigError(`--duration must be positive, got ${cfg.durationS}`);
  if (!(cfg.warmupIters >= 0 && cfg.warmupS >= 0 && cfg.threads >= 0 && cfg.noiseWindowS >= 0)) throw new ConfigError("--warmup-iters, --warmup-s, --threads and --noise-window must be >= 0");
}

const PRECISIONS = ["fp32", "fp16", "int8"];

function sessionOptions(cfg, threads) {
  const spin = cfg.spinning === undefined || cfg.spinning === null ? {} : { extra: { session: { intra_op: { allow_spinning: cfg.spinning ? "1" : "0" } } } };
  return { executionProviders: [cfg.provider], intraOpNumThreads: threads, ...spin };
}

async function contender(g, cfg, variant, batch, options) {
  const file = g.modelFile(variant);
  const bytes = await g.read(file); // the checked bytes: what was hashed is what runs
  let t0 = now();
  const session = await g.ort.InferenceSession.create(bytes, sessionOptionsFor(file, options));
  const createS = Number(now() - t0) / 1e9;
  const [zName, labelName] = session.inputNames;
  const feeds = {
    [zName]: new g.ort.Tensor("float32", latent(cfg.seed, batch, g.zDim), [batch, g.zDim]),
    [labelName]: new g.ort.Tensor("int64", BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % g.nClasses)), [batch]),
  };
  const call = () => session.run(feeds);
  t0 = now();
  await call();
  return { variant, batch, file, session, call, createS, firstS: Number(now() - t0) / 1e9, samples: [], warm: [0, 0] };
}

function result(c, cfg, threads, fidelity) {
  return {
    key: `edgegen/${c.variant}/${cfg.provider}`, contender: "edgegen", variant: c.variant, provider: cfg.provider, batch: c.batch,
    latency: latencyStats(c.samples, c.batch), session_create_s: c.createS, first_run_s: c.firstS, warmup_iters: c.warm[0], warmup_s: c.warm[1],
    settings: { intra_op_threads: threads, inter_op_threads: "ORT default", spinning: cfg.spinning === undefined || cfg.spinning === null ? "ORT default (on)" : cfg.spinning ? "on" : "off",
      graph_optimization: "all", io_binding: false, format: cfg.format, model: c.file },
    speedup_p50: null, speedup_throughput: null, fidelity: fidelity?.[0] ?? null, fidelity_source: fidelity?.[1] ?? null,
    achieved_gflops: null, matmul_fraction: null, best_tuned: false,
  };
}

async function timeGroup(group, cfg) {
  for (const c of group) c.warm = await warmUp(c.call, cfg.warmupIters, cfg.warmupS);
  const byName = new Map(group.map((c) => [c.variant, c]));
  const rounds = cfg.iters === null ? cfg.rounds : Math.min(cfg.rounds, cfg.iters);
  const perBlockS = cfg.iters === null ? cfg.durationS / cfg.rounds : null;
  const perBlockMin = Math.max(1, Math.ceil(cfg.minIters / cfg.rounds));
  for (let r = 0; r < rounds; r++) {
    const size = cfg.iters === null ? null : Math.floor(cfg.iters / rounds) + (r < cfg.iters % rounds ? 1 : 0);
    for (const name of rotation([...byName.keys()], r)) {
      const c = byName.get(name);
      c.samples.push(...(await timeBlock(c.call, size, perBlockS, perBlockMin)));
      await new Promise((res) => setTimeout(res, 20)); // let ORT's spinning threads go idle
    }
  }
}

/**
 * Time `bundleDir`'s variants at every batch size (options: DEFAULTS' names); returns the
 * report object (BenchReport's shape). `say(text)` hears the progress.
 */
export async function bench(bundleDir, options = {}, say = () => {}) {
  const cfg = { ...DEFAULTS, ...options };
  validate(cfg);
  const threads = cfg.threads || availableParallelism();
  const options_ = sessionOptions(cfg, threads);
  const g = await loadBundle(bundleDir, { format: cfg.format, provider: cfg.provider, sessionOptions: options_ });
  const variants = cfg.variants.length ? cfg.variants : PRECISIONS.filter((p) => g.variants.includes(p));
  for (const v of variants) g.modelFile(v); // a BundleError naming what the bundle has
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  const report = {
    passed: false, bundle: String(bundleDir), provider: cfg.provider, config: { ...cfg, bundle: String(bundleDir), reader: "node" },
    machine: { ...machineFacts(), providers: g.ort.listSupportedBackends?.().map((b) => b.name) ?? null },
    versions: { node: process.versions.node, "edgegen-runtime": pkg.version, "onnxruntime-node": g.ort.env?.versions?.node ?? null, "onnxruntime-common": g.ort.env?.versions?.common ?? null },
    threads: { budget: threads, usable_cores: availableParallelism(), ort_intra_op_threads: threads, ort_inter_op_threads: "ORT default",
      ort_spinning: cfg.spinning === undefined || cfg.spinning === null ? "ORT default (on)" : cfg.spinning ? "on" : "off" },
    scenario: "offline", flops: { per_image: null }, matmul: null, results: [], server: [], sweeps: {}, noise: null, unavailable: {}, failures: {},
    notes: [], served: {}, started: new Date().toISOString().replace(/\.\d+Z$/, "+00:00"), wall_s: 0, command: cfg.command ?? process.argv.slice(1).join(" "), source: SOURCE,
  };
  const t0 = performance.now();
  const noise = new Noise();
  if (cfg.noiseWindowS > 0) { say(`reading the machine's noise (${cfg.noiseWindowS} s idle)`); await noise.idle("before (idle)", cfg.noiseWindowS); }
  const fidelity = Object.fromEntries(Object.entries(g.manifest.variants).filter(([, v]) => v.deviation_from_fp32?.fidelity !== undefined)
    .map(([k, v]) => [k, [v.deviation_from_fp32.fidelity, "manifest (export, ORT CPU)"]]));
  for (const batch of cfg.batches) {
    noise.restart();
    const group = [];
    for (const v of variants) group.push(await contender(g, cfg, v, batch, options_));
    say(`batch ${batch}: timing ${variants.join(", ")} in ${cfg.rounds} interleaved rounds`);
    await timeGroup(group, cfg);
    noise.mark(`batch ${batch}`);
    report.results.push(...group.map((c) => result(c, cfg, threads, fidelity[c.variant])));
    for (const c of group) await c.session.release?.();
  }
  await g.release();
  if (cfg.noiseWindowS > 0) await noise.idle("after (idle)", cfg.noiseWindowS);
  report.noise = noise.record();
  if (report.noise.noisy) report.notes.push(`noisy machine: ${report.noise.reasons.join("; ")} — absolute numbers may not hold; rerun on a quiet machine`);
  report.machine.load_average_after = loadavg();
  report.wall_s = (performance.now() - t0) / 1e3;
  report.passed = report.results.length > 0 && Object.keys(report.failures).length === 0;
  return report;
}

/** The terminal table of a report. */
export function render(report) {
  const m = report.machine;
  const lines = [`${m.cpu} · ${m.usable_cores} usable cores · ${m.cpu_flags.join(" ")} · onnxruntime-node ${report.versions["onnxruntime-node"]} · load ${m.load_average.map((x) => x.toFixed(1)).join(", ")}`,
    `${"variant".padEnd(8)} ${"batch".padStart(5)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)} ${"img/s".padStart(10)} ${"session s".padStart(9)} ${"first s".padStart(8)}`];
  for (const r of report.results) {
    const l = r.latency;
    lines.push(`${r.variant.padEnd(8)} ${String(r.batch).padStart(5)} ${l.p50_ms.toFixed(3).padStart(9)} ${l.p99_ms.toFixed(3).padStart(9)} ${Math.round(l.images_per_s).toLocaleString("en").padStart(10)} ${r.session_create_s.toFixed(3).padStart(9)} ${r.first_run_s.toFixed(3).padStart(8)}`);
  }
  for (const n of report.notes) lines.push(`note: ${n}`);
  return lines.join("\n");
}

// A verified bundle and its ONNX Runtime sessions (edgegen.runtime.generator.Generator): the same
// latent rows, chunking, guard and sampler loop as Python, so the same request gives the same
// uint8 bytes. Platform-neutral: node.js and browser.js hand it the checked reads and `ort`.
import { BundleError, ProviderError, RuntimeInputError } from "./errors.js";
import {
  checkChoice, checkFlag, checkGuidance, checkLabels, checkLatents, checkSeeds, checkSteps, checkTruncation, OUTPUTS,
} from "./inputs.js";
import { latent, parseSeed, retrySeed, truncate } from "./latent.js";
import { imageShape } from "./manifest.js";
import { toPixels } from "./postprocess.js";
import { DENOISER_IO, sample } from "./sampler.js";

export const GUARD = { maxRetries: 4, minProb: 0.5 }; // edgegen.runtime.guard's defaults
export const FORMATS = ["onnx", "ort"];

/**
 * ONNX Runtime's session options for the model file ``rel``. An ORT-format model (``.ort``, the
 * Runtime optimization style ``edgegen export --ort-format`` writes) gets its saved runtime
 * optimizations replayed (``session.enable_saved_runtime_optimizations``, off by default in ONNX
 * Runtime for untrusted models), as the Python runtime does: the bytes are the ones the manifest
 * lists by sha256, and without the replay the int8 model runs unfused and gives other bytes.
 */
export function sessionOptionsFor(rel, options = {}) {
  if (!String(rel).endsWith(".ort")) return options;
  const extra = options.extra ?? {};
  return { ...options, extra: { ...extra, session: { ...(extra.session ?? {}), enable_saved_runtime_optimizations: "1" } } };
}

/** Row-wise softmax of logits [n * c] (doubles). */
export function softmaxRows(logits, n, c) {
  const out = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let k = 0; k < c; k++) max = Math.max(max, logits[i * c + k]);
    let sum = 0;
    for (let k = 0; k < c; k++) { out[i * c + k] = Math.exp(logits[i * c + k] - max); sum += out[i * c + k]; }
    for (let k = 0; k < c; k++) out[i * c + k] /= sum;
  }
  return out;
}

function ortVersion(ort) {
  return ort?.env?.versions?.common ?? ort?.env?.versions?.node ?? ort?.env?.versions?.web ?? "unknown";
}

export class Generator {
  /** Use loadBundle(); this takes a bundle whose checks have passed. `read(rel)` gives the
   * checked bytes of a listed file (read once, size and sha256 compared). */
  constructor({ root, manifest, read, ort, signature, format = "onnx", sessionOptions = {}, batchSize = 64, provider }) {
    this.root = root;
    this.manifest = manifest;
    this.signature = signature;
    this.format = checkChoice(format, "format", FORMATS);
    this.batchSize = batchSize;
    this.provider = provider;
    this.ort = ort;
    this._read = read;
    this._options = sessionOptions;
    this._sessions = new Map();
    const gen = manifest.generator;
    this.zDim = gen.z_dim;
    this.nClasses = gen.n_classes;
    this.labels = gen.labels ?? Array.from({ length: gen.n_classes }, (_, k) => String(k));
    this.imageShape = imageShape(manifest);
    this.variants = Object.keys(manifest.variants);
    this.defaultVariant = this.variants.includes("fp32") ? "fp32" : this.variants[0];
    const s = manifest.sampler;
    this.sampler = s ? { steps: s.steps, guidance: s.guidance, nullLabel: s.null_label, imageShape: s.image_shape, denoiser: s.denoiser?.variants ?? {} } : null;
    if (s && !(Number.isInteger(s.steps) && typeof s.guidance === "number" && Number.isInteger(s.null_label) && s.image_shape && s.denoiser?.variants)) {
      throw new BundleError(`${root}: the manifest's sampler section is incomplete (steps, guidance, null_label, image_shape, denoiser.variants); re-export the bundle`);
    }
    if (this.format === "ort" && !manifest.ort_format) {
      throw new BundleError(`${root} has no ORT-format models (no ort_format section in its manifest): export with \`edgegen export --ort-format\`, or load with { format: "onnx" }`);
    }
    this._io = [gen.inputs[0].name, gen.inputs[1].name, gen.outputs[0].name];
  }

  get hasEvaluator() { return Boolean(this.manifest.evaluator); }

  /** The checked bytes of a listed file (read again, size and sha256 compared with the
   * manifest: a file changed since loadBundle is a BundleError, never used). */
  async read(rel) { return this._read(rel); }

  /** The bundle-relative file a model key runs from, in this generator's format. */
  modelFile(key) {
    let rel;
    if (key === "evaluator") rel = this.manifest.evaluator?.file;
    else if (key.startsWith("denoiser:")) {
      const precision = key.slice("denoiser:".length);
      if (!this.sampler) throw new BundleError(`${this.root} (${this.manifest.generator.architecture}) has no iterative sampler and no denoiser: its model draws an image in one call`);
      rel = this.sampler.denoiser[precision]?.file;
      if (!rel) throw new BundleError(`${this.root} has no ${JSON.stringify(precision)} denoiser; it has ${Object.keys(this.sampler.denoiser).join(", ")} (export with --precision ${precision})`);
    } else {
      rel = this.manifest.variants[key]?.file;
      if (!rel) throw new BundleError(`${this.root} has no ${JSON.stringify(key)} variant; it has ${this.variants.join(", ")} (export with --precision ${key})`);
    }
    if (this.format !== "ort") return rel;
    const ortFile = this.manifest.ort_format.models[rel];
    if (!ortFile) throw new BundleError(`${this.root}: ort_format.models has no .ort file for ${rel}; re-export with --ort-format (it converts every model of the bundle)`);
    return ortFile;
  }

  /** The ONNX Runtime session of a variant, "evaluator" or "denoiser:<precision>", made once
   * from the checked bytes of its file. */
  async session(key) {
    if (!this._sessions.has(key)) {
      const made = this._create(key);
      this._sessions.set(key, made);
      made.catch(() => this._sessions.delete(key));
    }
    return this._sessions.get(key);
  }

  async _create(key) {
    const rel = this.modelFile(key);
    const bytes = await this._read(rel);
    let session;
    try {
      session = await this.ort.InferenceSession.create(bytes, sessionOptionsFor(rel, this._options));
    } catch (err) {
      const orf = this.manifest.ort_format;
      const hint = this.format === "ort" && orf
        ? ` (its .ort files were written by onnxruntime ${orf.onnxruntime}; this is onnxruntime ${ortVersion(this.ort)} — an ORT-format model loads in the version that wrote it and later ones)` : "";
      throw new ProviderError(`onnxruntime could not create a ${this.provider} session for ${this.root}/${rel}: ${String(err?.message ?? err).split("\n")[0].slice(0, 300)}${hint}`, { cause: err });
    }
    const [inputs, output] = key === "evaluator" ? [null, null]
      : key.startsWith("denoiser:") ? [DENOISER_IO.slice(0, 3), DENOISER_IO[3]] : [this._io.slice(0, 2), this._io[2]];
    if (inputs && (session.inputNames.join() !== inputs.join() || !session.outputNames.includes(output))) {
      throw new BundleError(`${this.root}/${rel} has inputs [${session.inputNames}] and outputs [${session.outputNames}]; the manifest says inputs [${inputs}] and output ${output} — re-export`);
    }
    return session;
  }

  /** Release every session (ONNX Runtime's native memory). */
  async release() {
    const all = [...this._sessions.values()];
    this._sessions.clear();
    for (const s of all) await (await s.catch(() => null))?.release?.();
  }

  /** uint8 pixels [N * H * W] (RGB: [N * H * W * 3]), or float32 [N * C * H * W] with
   * output: "float". See run() for the options. */
  async generate(labels, options = {}) {
    return (await this.run(labels, options)).images;
  }

  /**
   * The images of a request and where each came from. Give exactly one of `seed` (sample i =
   * row i of the seed's stream), `seeds` (one per label: row 0 of each) or `z` (Float32Array
   * [N * zDim]). `truncation` scales the latent; `variant` names a model; `guard` redraws
   * samples the evaluator rejects; `steps`/`guidance` set an iterative family's sampler.
   */
  async run(labels, { seed, seeds, z, truncation = null, variant, guard = false, output = "uint8", steps, guidance } = {}) {
    const loop = this._loop(steps, guidance);
    const y = checkLabels(labels, this.nClasses);
    const psi = checkTruncation(truncation);
    const v = checkChoice(variant ?? this.defaultVariant, "variant", this.variants);
    checkChoice(output, "output", OUTPUTS);
    const guarded = checkFlag(guard, "guard");
    const given = [["seed", seed], ["seeds", seeds], ["z", z]].filter(([, x]) => x !== undefined && x !== null).map(([k]) => k);
    if (given.length !== 1) throw new RuntimeInputError(`give exactly one of seed, seeds or z; got ${given.join(", ") || "none"} (e.g. { seed: 42 })`);
    if (guarded && given[0] === "z") throw new RuntimeInputError("guard: true needs seeds to redraw from; it cannot be used with caller-given z");
    if (guarded && !this.hasEvaluator) throw new RuntimeInputError(`guard: true needs an evaluator, and ${this.root} has none: export with an evaluator run or call without guard`);
    const n = y.length;
    let stream = null;
    let rows = null;
    if (seed !== undefined && seed !== null) {
      stream = new BigUint64Array(n).fill(parseSeed(seed));
      rows = Int32Array.from({ length: n }, (_, i) => i);
    } else if (seeds !== undefined && seeds !== null) {
      stream = BigUint64Array.from(checkSeeds(seeds, n));
      rows = new Int32Array(n);
    }
    const draw = (attempt, which) => {
      const out = new Float32Array(which.length * this.zDim);
      which.forEach((i, k) => out.set(latent(retrySeed(stream[i], attempt), 1, this.zDim, rows[i]), k * this.zDim));
      return truncate(out, psi);
    };
    const all = Array.from({ length: n }, (_, i) => i);
    const zz = stream ? draw(0, all) : truncate(checkLatents(z, n, this.zDim), psi);
    let images = await this._forward(v, zz, y, loop);
    const record = { labels: y, seeds: stream, rows, variant: v, accepted: null, attempts: null, prob: null, predicted: null };
    if (guarded) {
      const res = await this._guard(images, y, v, loop, draw);
      images = res.images;
      record.seeds = BigUint64Array.from(stream, (s, i) => retrySeed(s, res.attempts[i]));
      Object.assign(record, { accepted: res.accepted, attempts: res.attempts, prob: res.prob, predicted: res.predicted });
    }
    return { ...record, images: output === "float" ? images : toPixels(images, this.imageShape), shape: this.imageShape, ...this._settings(v, loop) };
  }

  /** The guard's loop (edgegen.runtime.guard._guard_loop): judge every sample, redraw the
   * rejected ones from attempt a's stream, a = 1 .. maxRetries. */
  async _guard(images, y, variant, loop, draw) {
    const n = y.length;
    const pixels = images.length / n;
    let verdicts = await this.judge(images, y);
    const attempts = new Int32Array(n);
    for (let a = 1; a <= GUARD.maxRetries; a++) {
      const todo = verdicts.accepted.flatMap((ok, i) => (ok ? [] : [i]));
      if (!todo.length) break;
      const redoLabels = todo.map((i) => y[i]);
      const redo = await this._forward(variant, draw(a, todo), redoLabels, loop);
      const again = await this.judge(redo, redoLabels);
      todo.forEach((i, k) => {
        images.set(redo.subarray(k * pixels, (k + 1) * pixels), i * pixels);
        verdicts.accepted[i] = again.accepted[k];
        verdicts.prob[i] = again.prob[k];
        verdicts.predicted[i] = again.predicted[k];
        attempts[i] = a;
      });
    }
    return { images, attempts, ...verdicts };
  }

  /** The evaluator's verdict on float images [N * C * H * W] for the requested labels y:
   * { predicted, prob (softmax of the requested label), accepted (top digit = label and
   * prob >= GUARD.minProb) } — the guard's rule, for an app that shows the verdict. */
  async judge(images, y) {
    const ev = this.manifest.evaluator;
    const session = await this.session("evaluator");
    const n = y.length;
    const per = images.length / n;
    const accepted = [];
    const prob = new Float32Array(n);
    const predicted = new Int32Array(n);
    for (let s = 0; s < n; s += this.batchSize) {
      const b = Math.min(this.batchSize, n - s);
      const feeds = { [ev.inputs[0].name]: new this.ort.Tensor("float32", images.slice(s * per, (s + b) * per), [b, ...this.imageShape]) };
      const logits = (await this._call(session, feeds, "evaluator"))[ev.outputs[0].name].data;
      const c = logits.length / b;
      const p = softmaxRows(logits, b, c);
      for (let i = 0; i < b; i++) {
        let best = 0;
        for (let k = 1; k < c; k++) if (p[i * c + k] > p[i * c + best]) best = k;
        const pi = p[i * c + y[s + i]];
        predicted[s + i] = best;
        prob[s + i] = pi;
        accepted.push(best === y[s + i] && pi >= GUARD.minProb);
      }
    }
    return { accepted, prob, predicted };
  }

  async _call(session, feeds, what) {
    try {
      return await session.run(feeds);
    } catch (err) {
      throw new ProviderError(`onnxruntime failed running the ${what} model of ${this.root}: ${String(err?.message ?? err).split("\n")[0].slice(0, 300)}`, { cause: err });
    }
  }

  /** float32 [N * C * H * W]: model.onnx in chunks of batchSize, or the sampler loop over the
   * variant's denoiser for loop = [steps, guidance]. */
  async _forward(variant, z, y, loop) {
    const per = this.imageShape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(y.length * per);
    if (loop) {
      const den = await this.session(`denoiser:${this._precision(variant)}`);
      const s = this.sampler;
      const call = { run: (feeds) => this._call(den, feeds, `${variant} denoiser`) };
      out.set(await sample(this.ort, call, z, y, { steps: loop[0], guidance: loop[1], nullLabel: s.nullLabel, imageShape: s.imageShape, batch: this.batchSize }));
    } else {
      const session = await this.session(variant);
      const [zName, labelName, imageName] = this._io;
      for (let s = 0; s < y.length; s += this.batchSize) {
        const b = Math.min(this.batchSize, y.length - s);
        const feeds = {
          [zName]: new this.ort.Tensor("float32", z.slice(s * this.zDim, (s + b) * this.zDim), [b, this.zDim]),
          [labelName]: new this.ort.Tensor("int64", BigInt64Array.from(y.slice(s, s + b), BigInt), [b]),
        };
        out.set((await this._call(session, feeds, variant))[imageName].data, s * per);
      }
    }
    if (!out.every(Number.isFinite)) throw new BundleError(`the ${variant} model of ${this.root} produced NaN or inf; the bundle is broken — re-export it or use another variant`);
    return out;
  }

  /** null: run model.onnx (one-call family, or the exported sampler settings); else the
   * [steps, guidance] the denoiser loop must run. */
  _loop(steps, guidance) {
    if ((steps === undefined || steps === null) && (guidance === undefined || guidance === null)) return null;
    if (!this.sampler) {
      throw new RuntimeInputError(`steps and guidance set an iterative sampler, and ${this.root} (${this.manifest.generator.architecture}) has none: its model draws an image in one call — call generate() without them`);
    }
    const n = steps === undefined || steps === null ? this.sampler.steps : checkSteps(steps);
    const w = guidance === undefined || guidance === null ? this.sampler.guidance : checkGuidance(guidance);
    return n === this.sampler.steps && w === this.sampler.guidance ? null : [n, w];
  }

  _precision(variant) {
    return String(this.manifest.variants[variant].precision ?? variant);
  }

  _settings(variant, loop) {
    if (!this.sampler) return {};
    if (!loop) return { steps: this.sampler.steps, guidance: this.sampler.guidance, model: this.modelFile(variant) };
    return { steps: loop[0], guidance: loop[1], model: this.modelFile(`denoiser:${this._precision(variant)}`) };
  }
}

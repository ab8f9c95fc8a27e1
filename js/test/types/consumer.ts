// A typed consumer of edgegen-runtime: `tsc --noEmit -p test/types/tsconfig.json` must pass
// against the installed package. The @ts-expect-error lines must each be errors (tsc fails on
// an unused one), so declarations that accepted anything would fail the check.
import {
  BundleError, EdgegenError, RuntimeInputError, checkGoldens, latent, loadBundle, parseSeed,
  type Generation, type Generator, type Manifest,
} from "edgegen-runtime";
import { bench, type BenchReport } from "edgegen-runtime/bench";
import { retrySeed } from "edgegen-runtime/core";

export async function main(publicKey: string): Promise<number> {
  const g: Generator = await loadBundle("bundles/cdcgan", { publicKey, format: "ort", batchSize: 32 });
  const img: Uint8Array = await g.generate([7], { seed: 42 });
  const floats: Float32Array = await g.generate([7, 1], { seed: 42n, output: "float" });
  const run: Generation = await g.run([1, 2], { seeds: [1, "2"], guard: true, variant: "int8" });
  const attempts: number = run.attempts?.[0] ?? 0;
  const m: Manifest = g.manifest;
  const z: Float32Array = latent(parseSeed("18446744073709551615"), 1, m.generator.z_dim);
  const report = await checkGoldens(g, { variant: "fp32" });
  const b: BenchReport = await bench("bundles/cdcgan", { batches: [1, 8], iters: 10 });
  const next: bigint = retrySeed(42, 1);
  try {
    await g.generate([12], { seed: 1, truncation: 0.7, steps: 4, guidance: 1.5 });
  } catch (err) {
    if (err instanceof RuntimeInputError || err instanceof BundleError) return -1;
    if (err instanceof EdgegenError) return -2;
  }
  // @ts-expect-error: a seed is a number, a BigInt or a decimal string
  await g.generate([7], { seed: true });
  // @ts-expect-error: the format is "onnx" or "ort"
  await loadBundle("b", { format: "tflite" });
  // @ts-expect-error: generate() gives pixels, not a number
  const wrong: number = await g.generate([7], { seed: 1 });
  return img.length + floats.length + attempts + z.length + (report.passed ? 1 : 0) + b.results.length + Number(next) + wrong;
}

// Types of "edgegen-runtime/bench" (Node): the on-device benchmark behind `npx edgegen-runtime bench`.
export interface BenchOptions {
  batches?: number[];
  variants?: string[];
  format?: "onnx" | "ort";
  provider?: string;
  /** intra-op threads; 0: the usable cores */
  threads?: number;
  spinning?: boolean | null;
  warmupIters?: number;
  warmupS?: number;
  /** timed calls per variant and batch, or null: by durationS */
  iters?: number | null;
  durationS?: number;
  rounds?: number;
  seed?: number;
  noiseWindowS?: number;
  command?: string;
}
export interface LatencyStats {
  batch: number; count: number; min_ms: number; mean_ms: number; p50_ms: number; p90_ms: number; p95_ms: number;
  p99_ms: number; max_ms: number; std_ms: number; total_s: number; images_per_s: number;
}
/** edgegen bench's BenchReport JSON shape. */
export interface BenchReport {
  passed: boolean;
  bundle: string;
  provider: string;
  machine: Record<string, unknown>;
  versions: Record<string, string | null>;
  results: Array<{ key: string; contender: "edgegen"; variant: string; provider: string; batch: number; latency: LatencyStats;
    session_create_s: number; first_run_s: number; warmup_iters: number; warmup_s: number; settings: Record<string, unknown> }>;
  noise: { noisy: boolean; reasons: string[]; [key: string]: unknown } | null;
  notes: string[];
  source: string;
  [key: string]: unknown;
}
export declare const DEFAULTS: Required<Omit<BenchOptions, "spinning" | "command">> & { iters: number | null };
export function bench(bundleDir: string, options?: BenchOptions, say?: (text: string) => void): Promise<BenchReport>;
export function render(report: BenchReport): string;
export function latencyStats(samplesNs: Array<number | bigint>, batch: number): LatencyStats;
export function percentile(sorted: number[], q: number): number;

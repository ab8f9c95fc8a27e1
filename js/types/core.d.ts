// Types of edgegen-runtime's platform-neutral core ("edgegen-runtime/core"; the Node and
// browser entries re-export all of it). Hand-written; checked by `tsc --noEmit` of a typed
// consumer (test/types/consumer.ts) against the packed package.

export class EdgegenError extends Error {}
/** A bad option: an unusable public key, an unknown format, no crypto.subtle... */
export class ConfigError extends EdgegenError {}
/** A bundle that is missing files, has an unknown schema, or fails its hash or signature checks. */
export class BundleError extends EdgegenError {}
/** ONNX Runtime could not create a session or run a model on the asked execution provider. */
export class ProviderError extends EdgegenError {}
/** Bad input to generate()/run(): labels out of range, a seed outside [0, 2**64), NaN latents... */
export class RuntimeInputError extends EdgegenError {}

/** A seed: an integer in [0, 2**64) — a safe-integer Number, a BigInt or a decimal string. */
export type Seed = number | bigint | string;

export declare const LATENT: "splitmix64-boxmuller-f64-to-f32/1";
export declare const RULE: "u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)";
export declare const SCHEMA: "edgegen.bundle/1";
export declare const MANIFEST: "manifest.json";
export declare const SIGNATURE: "bundle.sig";
export declare const CACHE_DIRS: string[];
export declare const MAX_MANIFEST_BYTES: number;
export declare const MAX_DEPTH: number;
export declare const MAX_SEED: bigint;
export declare const MAX_SAMPLES: number;
export declare const MAX_STEPS: number;
export declare const MAX_GUIDANCE: number;
export declare const FORMATS: readonly ["onnx", "ort"];
export declare const GUARD: { readonly maxRetries: number; readonly minProb: number };
export declare const DENOISER_IO: readonly ["x", "t", "label", "velocity"];

export function parseSeed(value: Seed, what?: string): bigint;
/** Samples start .. start + n - 1 of seed's stream: Float32Array [n * zDim], row-major. */
export function latent(seed: Seed, n: number, zDim: number, start?: number): Float32Array;
export function latentForSeeds(seeds: readonly Seed[], zDim: number): Float32Array;
export function retrySeed(seed: Seed, attempt: number): bigint;
export function truncate(z: Float32Array, psi: number | null | undefined): Float32Array;
export function float32Hex(values: ArrayLike<number>): string[];
export function toUint8(values: ArrayLike<number>): Uint8Array;
/** float32 [n, C, H, W] -> uint8 [n, H, W] (one channel) or [n, H, W, C]. */
export function toPixels(values: ArrayLike<number>, shape: readonly [number, number, number] | number[]): Uint8Array;
export function encodePgm(pixels: Uint8Array, shape: readonly [number, number, number] | number[]): Uint8Array;
export function encodePng(pixels: Uint8Array, shape: readonly [number, number, number] | number[]): Uint8Array;
export function timeGrid(steps: number): Float32Array;

/** manifest.json after its checks (the fields readers use are typed; see bundle.schema.json). */
export interface Manifest {
  schema: "edgegen.bundle/1";
  generator: {
    architecture: string;
    z_dim: number;
    n_classes: number;
    labels?: string[];
    image_shape?: [number, number, number];
    inputs: TensorSpec[];
    outputs: TensorSpec[];
    [key: string]: unknown;
  };
  variants: Record<string, { file: string; precision: "fp32" | "fp16" | "bf16" | "int8"; [key: string]: unknown }>;
  files: Record<string, { sha256: string; bytes: number }>;
  evaluator?: { file: string; inputs: TensorSpec[]; outputs: TensorSpec[]; [key: string]: unknown } | null;
  sampler?: { steps: number; guidance: number; null_label: number; image_shape: [number, number, number]; denoiser: { variants: Record<string, { file: string; precision: string }> }; [key: string]: unknown };
  ort_format?: OrtFormat;
  latent: { name: string; [key: string]: unknown };
  postprocess: { rule: string; [key: string]: unknown };
  golden: { sets: Array<{ dir: string; batch?: number; seed?: string; start?: number; labels?: number[] }>; suggested_atol?: number; [key: string]: unknown };
  [key: string]: unknown;
}

export interface TensorSpec { name: string; dtype: string; shape: Array<number | string>; range?: [number, number] }

/** The manifest's ORT-format section (edgegen export --ort-format). */
export interface OrtFormat {
  /** The onnxruntime version whose converter wrote the .ort files. */
  onnxruntime: string;
  optimization_style: "Runtime" | "Fixed";
  required_operators?: string;
  type_reduction?: boolean;
  /** model.onnx -> model.ort, evaluator.onnx -> evaluator.ort, ... */
  models: Record<string, string>;
}

export type ValidateFunction = ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; keyword: string; message?: string; params?: unknown }> | null };
export function compileSchema(Ajv: new (options?: object) => { compile(schema: object): ValidateFunction }, schema: object): ValidateFunction;
export function parseManifest(bytes: Uint8Array, validate: ValidateFunction, where?: string): Manifest;
export function strictParse(text: string): unknown;
export function nestingDepth(text: string, limit?: number): number;
export function checkContract(manifest: Manifest, where: string): void;
export function checkNames(manifest: Manifest, where: string): void;
export function checkListing(manifest: Manifest, found: Set<string>, root: string): void;
export function namedFiles(manifest: Manifest): Array<[string, string]>;
export function goldenFiles(manifest: Manifest, index: number, where: string): [string[], string];
export function imageShape(manifest: Manifest): [number, number, number];

export interface SignatureStatus {
  status: "verified" | "signed, not checked" | "unsigned" | "not checked";
  files?: number;
  method?: string;
  /** verified against a listing of the folder (Node), or against the manifest's files (browser) */
  complete?: boolean;
  note?: string;
}
export function checkSignature(sigText: string, options: {
  verify: (data: Uint8Array, derSignature: Uint8Array) => Promise<boolean>;
  sha256: (data: Uint8Array) => Promise<Uint8Array>;
  files: Map<string, string>;
  manifest: Manifest;
  complete: boolean;
}): Promise<SignatureStatus>;
export function b64decode(text: string): Uint8Array;
export function hexOf(bytes: Uint8Array): string;
export function pae(payloadType: string, payload: Uint8Array): Uint8Array;
export function derToP1363(der: Uint8Array, size: number): Uint8Array;

export interface Tensor { name: string; dataType: number; dims: number[]; data: Float32Array | BigInt64Array }
export function readTensor(bytes: Uint8Array): Tensor;

/** The subset of an onnxruntime module (onnxruntime-node or onnxruntime-web) the package uses. */
export interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options?: object): Promise<OrtSession> };
  Tensor: new (type: "float32" | "int64", data: Float32Array | BigInt64Array, dims: readonly number[]) => unknown;
  env?: { versions?: Record<string, string> };
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dims: readonly number[] }>>;
  release?(): Promise<void>;
}

export interface GenerateOptions {
  /** sample i = row i of this seed's stream */
  seed?: Seed;
  /** one seed per label: sample i = row 0 of seeds[i] */
  seeds?: readonly Seed[];
  /** the caller's own latents, Float32Array [N * zDim] */
  z?: Float32Array | Float64Array | number[];
  /** scales the latent by float32(psi), 0 < psi <= 4 */
  truncation?: number | null;
  /** one of the bundle's variants (default fp32) */
  variant?: string;
  /** redraw samples the evaluator rejects (needs an evaluator) */
  guard?: boolean;
  output?: "uint8" | "float";
  /** iterative families (cflow): sampler steps and guidance; other settings run the denoiser loop */
  steps?: number;
  guidance?: number;
}

export interface Generation {
  /** uint8 [N, H, W] ([N, H, W, C] for more channels), or float32 [N, C, H, W] with output "float" */
  images: Uint8Array | Float32Array;
  labels: number[];
  /** the stream each returned sample was drawn from (null for caller-given z) */
  seeds: BigUint64Array | null;
  rows: Int32Array | null;
  variant: string;
  accepted: boolean[] | null;
  attempts: Int32Array | null;
  prob: Float32Array | null;
  predicted: Int32Array | null;
  shape: [number, number, number];
  steps?: number;
  guidance?: number;
  model?: string;
}

export interface GoldenReport {
  passed: boolean;
  variant: string;
  format: "onnx" | "ort";
  sets: Array<{ dir: string; batch: number; maxAbs: number; atol: number; zExact: boolean | null; ok: boolean }>;
  vectors: Array<{ what: string; seed: string; ok: boolean; [key: string]: unknown }>;
}

export class Generator {
  readonly root: string;
  readonly manifest: Manifest;
  readonly signature: SignatureStatus;
  readonly format: "onnx" | "ort";
  readonly batchSize: number;
  readonly provider: string;
  readonly ort: OrtModule;
  readonly zDim: number;
  readonly nClasses: number;
  readonly labels: string[];
  readonly imageShape: [number, number, number];
  readonly variants: string[];
  readonly defaultVariant: string;
  readonly sampler: { steps: number; guidance: number; nullLabel: number; imageShape: [number, number, number]; denoiser: Record<string, { file: string }> } | null;
  readonly hasEvaluator: boolean;
  /** The checked bytes of a listed file (size and sha256 compared again). */
  read(rel: string): Promise<Uint8Array>;
  /** The bundle-relative file a variant, "evaluator" or "denoiser:<precision>" runs from. */
  modelFile(key: string): string;
  session(key: string): Promise<OrtSession>;
  /** uint8 pixels (or float32 with output "float"); the same bytes as the Python runtime. */
  generate(labels: ArrayLike<number | bigint>, options?: GenerateOptions & { output?: "uint8" }): Promise<Uint8Array>;
  generate(labels: ArrayLike<number | bigint>, options: GenerateOptions & { output: "float" }): Promise<Float32Array>;
  run(labels: ArrayLike<number | bigint>, options?: GenerateOptions): Promise<Generation>;
  /** The evaluator's verdict on float images [N * C * H * W] (the guard's acceptance rule). */
  judge(images: Float32Array, labels: readonly number[]): Promise<{ accepted: boolean[]; prob: Float32Array; predicted: Int32Array }>;
  release(): Promise<void>;
}

export function checkGoldens(g: Generator, options?: { variant?: string; atol?: number }): Promise<GoldenReport>;
export function checkLatentVectors(manifest: Manifest): GoldenReport["vectors"];
export function softmaxRows(logits: ArrayLike<number>, n: number, c: number): Float64Array;

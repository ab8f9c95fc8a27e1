// Types of "edgegen-runtime": the Node entry (a bundle folder) and the browser entry (a bundle
// URL) share this signature; the core ("edgegen-runtime/core") is re-exported by both.
export * from "./core.js";
import type { Generator, OrtModule, ValidateFunction } from "./core.js";

export interface LoadOptions {
  /** Node: PEM text, a PEM file's path or a KeyObject; browser: PEM text or an ECDSA CryptoKey.
   * bundle.sig must verify with it over exactly the bundle's files. */
  publicKey?: string | Uint8Array | object | null;
  /** "onnx" (default) or "ort": the ORT-format models of the manifest's ort_format section */
  format?: "onnx" | "ort";
  /** onnxruntime's execution provider: "cpu" (Node's default), "wasm" (the browser's), ... */
  provider?: string;
  /** requests run in chunks of this many samples (64, as the Python runtime) */
  batchSize?: number;
  /** onnxruntime's session options (intraOpNumThreads, ...) */
  sessionOptions?: Record<string, unknown>;
  /** a schema object (or Node: a file path; browser: a URL) instead of the packaged one */
  schema?: object | string | URL;
  /** the onnxruntime module to use (default: onnxruntime-node / onnxruntime-web) */
  ort?: OrtModule;
  /** browser: the Ajv 2020-12 class, when the packaged validator is not used */
  Ajv?: new (options?: object) => { compile(schema: object): ValidateFunction };
  /** browser: the fetch function (default: globalThis.fetch) */
  fetch?: typeof globalThis.fetch;
  /** browser: also fetch and hash every listed file now (Node always does) */
  verifyAll?: boolean;
}

/** Check the bundle (docs/embedding.md §0) and open a Generator on it. */
export function loadBundle(location: string | URL, options?: LoadOptions): Promise<Generator>;

/** Node only: the checks up to the file listing, without ONNX Runtime. */
export function openBundle(root: string, options?: { schema?: object | string }): Promise<{
  root: string;
  manifest: import("./core.js").Manifest;
  manifestBytes: Uint8Array;
  found: Set<string>;
  read(rel: string): Uint8Array;
}>;
/** Node only: the path of the manifest's JSON Schema that the package validates with. */
export function schemaFile(): string;
/** Browser only: the packaged schema's URL. */
export declare const SCHEMA_URL: URL;

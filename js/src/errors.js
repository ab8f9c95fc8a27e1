// The package's errors, mirroring edgegen.runtime.errors: every message says what was found,
// what was expected and what to do. An app catches EdgegenError or one of its subclasses.

/** Base class of every error edgegen-runtime throws on purpose. */
export class EdgegenError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A bad option (an unreadable or unusable public key, an unknown format...). */
export class ConfigError extends EdgegenError {}

/** A bundle that is missing files, has an unknown schema, or fails its hash or signature checks. */
export class BundleError extends EdgegenError {}

/** ONNX Runtime could not create a session or run a model on the asked execution provider. */
export class ProviderError extends EdgegenError {}

/** Bad input to generate()/run(): labels out of range, a seed outside [0, 2**64), NaN latents... */
export class RuntimeInputError extends EdgegenError {}

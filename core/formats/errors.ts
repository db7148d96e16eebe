/**
 * Errors for everything the client reads from disk: checkpoints, tokenizers, datasets.
 * Each says what was found and what was expected, so a user can fix the file without reading code.
 * `code` is stable for programs; `message` is for people.
 */
export class FormatError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The safetensors length prefix or JSON header is unreadable, too large, or not the expected shape. */
export class SafetensorsHeaderError extends FormatError {
  constructor(message: string) {
    super("SAFETENSORS_HEADER", message);
  }
}

/** The tensors' byte ranges do not tile the data section exactly (gap, overlap, out of bounds, wrong size). */
export class SafetensorsLayoutError extends FormatError {
  constructor(message: string) {
    super("SAFETENSORS_LAYOUT", message);
  }
}

/** A dtype the header names that safetensors does not define, or that cannot become f32 master weights. */
export class UnsupportedDtypeError extends FormatError {
  constructor(message: string) {
    super("UNSUPPORTED_DTYPE", message);
  }
}

/** A tensor asked for by name that the file does not hold. */
export class MissingTensorError extends FormatError {
  constructor(message: string) {
    super("MISSING_TENSOR", message);
  }
}

/** Tokenizer files that cannot be loaded (bad JSON, missing merges, ids out of range). */
export class TokenizerError extends FormatError {
  constructor(message: string) {
    super("TOKENIZER", message);
  }
}

// Reading Hugging Face config.json objects: typed errors and small field readers shared by the model families.

/** A config.json that cannot describe a model we build: names the field and what was expected. */
export class ModelConfigError extends Error {
  override name = "ModelConfigError";
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** model_type / architectures name a family this engine does not implement. */
export class UnknownArchitectureError extends ModelConfigError {
  override name = "UnknownArchitectureError";
}

export type ConfigJson = Record<string, unknown>;

export function asObject(json: unknown): ConfigJson {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ModelConfigError(
      `config must be a JSON object, got ${Array.isArray(json) ? "array" : typeof json}`,
    );
  }
  return json as ConfigJson;
}

/** A required positive integer field (or the first present of several HF aliases). */
export function positiveInt(json: ConfigJson, ...names: string[]): number {
  for (const name of names) {
    const v = json[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      throw new ModelConfigError(`config.${name} must be a positive integer, got ${JSON.stringify(v)}`, name);
    }
    return v;
  }
  throw new ModelConfigError(`config is missing ${names.join(" or ")} (a positive integer)`, names[0]);
}

export function optionalPositiveInt(json: ConfigJson, name: string, fallback: number): number {
  return json[name] === undefined || json[name] === null ? fallback : positiveInt(json, name);
}

export function optionalPositiveNumber(json: ConfigJson, name: string, fallback: number): number {
  const v = json[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(`config.${name} must be a positive number, got ${JSON.stringify(v)}`, name);
  }
  return v;
}

export function optionalBoolean(json: ConfigJson, name: string, fallback: boolean): boolean {
  const v = json[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") {
    throw new ModelConfigError(`config.${name} must be true or false, got ${JSON.stringify(v)}`, name);
  }
  return v;
}

/** Throws unless `value` is one of `allowed` (used for options whose other values we do not implement). */
export function oneOf<T extends string>(
  json: ConfigJson,
  name: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const v = json[name] ?? fallback;
  if (!allowed.includes(v as T)) {
    throw new ModelConfigError(
      `config.${name} is ${JSON.stringify(v)}; supported: ${allowed.join(", ")}`,
      name,
    );
  }
  return v as T;
}

export function requireDivisible(field: string, value: number, by: number, byName: string): void {
  if (value % by !== 0) {
    throw new ModelConfigError(`config.${field} (${value}) must be divisible by ${byName} (${by})`, field);
  }
}

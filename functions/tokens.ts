import { createHash, randomBytes } from "node:crypto";

/** A fresh 256-bit client token; shown once, only its hash is stored. */
export const newToken = () => `ferret_${randomBytes(32).toString("base64url")}`;

export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

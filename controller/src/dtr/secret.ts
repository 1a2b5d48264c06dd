// Resolves the admin password/token reference of a DTR spec. The value is returned to the caller
// only; errors name the variable or file, never the content.
import { readFile } from "node:fs/promises";
import type { SecretRef } from "@dtrcache/crds";
import { DtrCredentialsError } from "./errors.js";

export async function readSecretRef(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if ("env" in ref) {
    const value = env[ref.env];
    if (value === undefined || value === "") throw new DtrCredentialsError(`environment variable ${ref.env} (DTR admin password) is not set`);
    return value;
  }
  let text: string;
  try {
    text = await readFile(ref.file, "utf8");
  } catch (error) {
    const reason = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "unreadable";
    throw new DtrCredentialsError(`cannot read DTR admin password file ${ref.file}: ${reason}`);
  }
  // Secret files usually end with a newline that is not part of the password.
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new DtrCredentialsError(`DTR admin password file ${ref.file} is empty`);
  return value;
}

// Checks that a referenced file holds the PEM material its field promises. The reading is behind
// a small interface so validation stays apart from the file system (tests use real files anyway).
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";

export type ReadResult = { ok: true; text: string } | { ok: false; reason: "not-found" | "is-directory" | "unreadable" };

export type FileReader = (absolutePath: string) => ReadResult;

export const readFromDisk: FileReader = (absolutePath) => {
  try {
    return { ok: true, text: readFileSync(absolutePath, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { ok: false, reason: "not-found" };
    if (code === "EISDIR") return { ok: false, reason: "is-directory" };
    return { ok: false, reason: "unreadable" };
  }
};

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

interface PemBlock {
  readonly label: string;
  readonly text: string;
}

function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(BLOCK)].map((m) => ({ label: m[1] ?? "", text: m[0] }));
}

function describeBlocks(blocks: readonly PemBlock[]): string {
  if (blocks.length === 0) return "no PEM block";
  return [...new Set(blocks.map((b) => b.label))].map((label) => `a ${label} block`).join(" and ");
}

/** Every block is a CERTIFICATE that parses. Returns a reason (never file content) or the certificates. */
export function checkCertificates(text: string): { ok: true; certificates: X509Certificate[] } | { ok: false; reason: string } {
  const blocks = pemBlocks(text);
  const certs = blocks.filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0 || certs.length !== blocks.length) {
    return { ok: false, reason: `must hold PEM CERTIFICATE block(s) only; it holds ${describeBlocks(blocks)}` };
  }
  const certificates: X509Certificate[] = [];
  for (const [index, block] of certs.entries()) {
    try {
      certificates.push(new X509Certificate(block.text));
    } catch {
      return { ok: false, reason: `certificate ${index + 1} in the file does not parse as X.509` };
    }
  }
  return { ok: true, certificates };
}

/** Exactly one unencrypted private key block that parses. */
export function checkPrivateKey(text: string): { ok: true; key: KeyObject } | { ok: false; reason: string } {
  const blocks = pemBlocks(text);
  const keys = blocks.filter((b) => /(^| )PRIVATE KEY$/.test(b.label));
  if (keys.some((b) => b.label === "ENCRYPTED PRIVATE KEY") || /Proc-Type: 4,ENCRYPTED/.test(text)) {
    return { ok: false, reason: "holds an encrypted private key; the cache needs it unencrypted" };
  }
  const only = keys[0];
  if (keys.length !== 1 || !only || blocks.length !== 1) {
    return { ok: false, reason: `must hold exactly one PEM PRIVATE KEY block; it holds ${describeBlocks(blocks)}` };
  }
  try {
    return { ok: true, key: createPrivateKey(only.text) };
  } catch {
    return { ok: false, reason: "its PRIVATE KEY block does not parse" };
  }
}

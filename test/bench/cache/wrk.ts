// One load generator for every peer: wrk, one thread (the other core serves), fixed connections
// and duration. Returns requests/s and bytes/s as wrk reports them.
import { execFile } from "node:child_process";

export interface WrkResult {
  readonly rps: number;
  readonly bytesPerSec: number;
  /** Requests completed in the run. */
  readonly requests: number;
  readonly errors: number;
}

const UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

export function parseWrk(out: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? "0");
  const t = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const bytesPerSec = t ? Number(t[1]) * (UNITS[t[2] ?? "B"] ?? 1) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? "0");
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? "0");
  return { rps, bytesPerSec, requests, errors };
}

export function wrk(url: string, opts: { connections: number; seconds: number; headers?: Record<string, string> }): Promise<WrkResult> {
  const args = ["-t1", `-c${opts.connections}`, `-d${opts.seconds}s`, "--timeout", "10s"];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push("-H", `${k}: ${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    execFile("/usr/bin/wrk", args, { timeout: (opts.seconds + 20) * 1000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(parseWrk(stdout));
    });
  });
}

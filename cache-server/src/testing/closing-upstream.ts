// A registry upstream written on a raw TCP socket (no HTTP library, so nothing smooths over how a
// connection ends): every answer says `Connection: close` and the socket is closed right after
// the last byte. This is what nginx does after `keepalive_requests`, what HTTP/1.0 hops and
// restarting upstreams do; undici 7 crashed the whole process on it when its parser was paused
// by back-pressure at that moment (nodejs/undici#5360).
//
// Blobs are looked up through a function so a test can serve thousands of them without holding
// every body in memory. A "truncated" blob announces its full Content-Length and sends fewer bytes.
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * How a blob GET is answered; all of them end with the socket closed.
 * - whole: headers and body in one write
 * - pieces: headers, then the body in several writes on later turns of the event loop
 * - http10: an HTTP/1.0 answer (not persistent by default) with no Connection header
 * - truncated: the full Content-Length announced, only `sent` bytes sent
 */
export type ClosingAnswer = "whole" | "pieces" | "http10" | "truncated";

export interface ClosingBlob {
  readonly bytes: Buffer;
  readonly answer: ClosingAnswer;
  /** For "truncated": how many bytes are sent before the close. */
  readonly sent?: number;
}

const BLOB_PATH = /^\/v2\/(?:.+)\/blobs\/(sha256:[a-f0-9]{64})(?:\?.*)?$/;
const HEAD_END = "\r\n\r\n";
/** Requests carry no body here; a head larger than this is a client bug, not something to buffer. */
const MAX_HEAD = 64 * 1024;

export class ClosingUpstream {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Blob GETs answered (any outcome). */
  blobGets = 0;

  constructor(private readonly lookup: (digest: string) => ClosingBlob | undefined) {}

  async start(): Promise<string> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    // The cache may cut a connection at any time (its client gave up): not our concern.
    socket.on("error", () => undefined);
    let head = "";
    const onData = (chunk: Buffer): void => {
      head += chunk.toString("latin1");
      const end = head.indexOf(HEAD_END);
      if (end < 0) {
        if (head.length > MAX_HEAD) socket.destroy();
        return;
      }
      // One request per connection: every answer closes it, so nothing after the head matters.
      socket.off("data", onData);
      const [method = "", target = ""] = (head.slice(0, head.indexOf("\r\n")) || "").split(" ");
      this.answer(socket, method, target);
    };
    socket.on("data", onData);
  }

  private answer(socket: Socket, method: string, target: string): void {
    if (target === "/v2/" || target === "/v2") return reply(socket, "HTTP/1.1 200 OK", { "Content-Type": "application/json" }, Buffer.from("{}"), method);
    const digest = BLOB_PATH.exec(target)?.[1];
    const blob = digest ? this.lookup(digest) : undefined;
    if (!digest || !blob) {
      const body = Buffer.from(JSON.stringify({ errors: [{ code: digest ? "BLOB_UNKNOWN" : "NAME_UNKNOWN", message: "unknown" }] }));
      return reply(socket, "HTTP/1.1 404 Not Found", { "Content-Type": "application/json" }, body, method);
    }
    if (method === "GET") this.blobGets++;
    const headers = { "Content-Type": "application/octet-stream", "Docker-Content-Digest": digest };
    switch (blob.answer) {
      case "whole":
        return reply(socket, "HTTP/1.1 200 OK", headers, blob.bytes, method);
      case "http10":
        return reply(socket, "HTTP/1.0 200 OK", headers, blob.bytes, method, false);
      case "truncated":
        return reply(socket, "HTTP/1.1 200 OK", headers, blob.bytes, method, true, blob.sent ?? Math.floor(blob.bytes.length / 2));
      case "pieces":
        return replyInPieces(socket, headers, blob.bytes, method);
    }
  }
}

function headText(status: string, headers: Record<string, string>, length: number, close: boolean): string {
  const lines = [status, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${length}`];
  if (close) lines.push("Connection: close");
  return `${lines.join("\r\n")}${HEAD_END}`;
}

/** Head and (up to `sent` bytes of) body in one write, then FIN right behind it. */
function reply(socket: Socket, status: string, headers: Record<string, string>, body: Buffer, method: string, close = true, sent = body.length): void {
  const head = Buffer.from(headText(status, headers, body.length, close), "latin1");
  socket.end(method === "HEAD" ? head : Buffer.concat([head, body.subarray(0, sent)]));
}

/** The body in four writes on later event-loop turns, the close right after the last one. */
function replyInPieces(socket: Socket, headers: Record<string, string>, body: Buffer, method: string): void {
  socket.write(headText("HTTP/1.1 200 OK", headers, body.length, true), "latin1");
  if (method === "HEAD") return void socket.end();
  const step = Math.ceil(body.length / 4);
  let offset = 0;
  const next = (): void => {
    if (socket.destroyed) return;
    const part = body.subarray(offset, offset + step);
    offset += part.length;
    if (offset >= body.length) return void socket.end(part);
    socket.write(part);
    setImmediate(next);
  };
  setImmediate(next);
}

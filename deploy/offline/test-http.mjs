// A tiny HTTP server for harness tests: 200 with the container's hostname on every path, and
// /healthz. The port comes from $PORT (default 8080).
import { createServer } from "node:http";
import { hostname } from "node:os";

const port = Number(process.env.PORT ?? "8080");
const server = createServer((req, res) => {
  const body = req.url === "/healthz" ? "ok\n" : `${hostname()}\n`;
  res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.listen(port, () => console.log(`test-http listening on ${port}`));
// Swarm stops tasks with SIGTERM; exit at once instead of waiting for the grace period.
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));

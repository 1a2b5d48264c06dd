// nginx proxy_cache as a benchmark peer: Debian's nginx with its own prefix and config in a temp
// dir, loopback only; one worker, or "auto" (nginx's own default choice: one per core), so the
// cache can be compared process for process and machine for machine.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface NginxPeer {
  readonly url: string;
  readonly masterPid: number;
  workerPids(): Promise<number[]>;
  stop(): Promise<void>;
}

export async function startNginx(dir: string, port: number, upstreamUrl: string, workers: 1 | "auto" = 1): Promise<NginxPeer> {
  await mkdir(join(dir, "logs"), { recursive: true });
  await mkdir(join(dir, "cache"), { recursive: true });
  await mkdir(join(dir, "tmp"), { recursive: true });
  // As root, nginx would drop its worker to www-data, which cannot write into our private temp dir.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  const conf = `${user}worker_processes ${workers};
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "logs", "error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${join(dir, "tmp", "body")};
  proxy_temp_path ${join(dir, "tmp", "proxy")};
  fastcgi_temp_path ${join(dir, "tmp", "fastcgi")};
  uwsgi_temp_path ${join(dir, "tmp", "uwsgi")};
  scgi_temp_path ${join(dir, "tmp", "scgi")};
  proxy_cache_path ${join(dir, "cache")} levels=1:2 keys_zone=reg:10m max_size=4g inactive=24h use_temp_path=off;
  upstream registry { server ${new URL(upstreamUrl).host}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache reg;
    proxy_cache_key $request_method$uri$http_accept;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 60s;
    proxy_max_temp_file_size 0;
    # Manifests by tag: revalidated after 1 s (nginx has no per-request freshness like ours).
    location ~ ^/v2/.+/manifests/[^:]+$ {
      proxy_pass http://registry;
      proxy_cache_valid 200 1s;
      proxy_cache_revalidate on;
    }
    location / {
      proxy_pass http://registry;
      proxy_cache_valid 200 24h;
    }
  }
}
`;
  const confFile = join(dir, "nginx.conf");
  await writeFile(confFile, conf);
  const child: ChildProcess = spawn("/usr/sbin/nginx", ["-p", dir, "-c", confFile, "-g", "daemon off;"], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`${url}/v2/`);
      await r.arrayBuffer();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const masterPid = child.pid ?? 0;
  return {
    url,
    masterPid,
    async workerPids() {
      const text = await readFile(`/proc/${masterPid}/task/${masterPid}/children`, "utf8").catch(() => "");
      return text.trim().split(/\s+/).filter(Boolean).map(Number);
    },
    async stop() {
      child.kill("SIGQUIT");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

// The config.yml text unit tests start caches with: the runbook's shape, listening on a free
// loopback port (the debug listener too), with the test's storage root and upstreams. Extra
// `http:` lines (e.g. tls) and extra downstream options (e.g. cas, servestale) are appended where
// they belong.
export interface TestConfigOptions {
  readonly root: string;
  readonly upstreams: readonly string[];
  /** Lines under `http:`, indented two spaces (e.g. "  tls:"). */
  readonly httpLines?: string;
  /** Lines under the downstream `options:`, indented eight spaces. */
  readonly optionLines?: string;
}

export function testConfigText(options: TestConfigOptions): string {
  const upstreams = options.upstreams.map((u) => `            - ${u}`).join("\n");
  return `version: 0.1
log:
  level: info
storage:
  delete:
    enabled: true
  filesystem:
    rootdirectory: ${options.root}
http:
  addr: 127.0.0.1:0
  secret: s3cret
  debug:
    addr: 127.0.0.1:0
${options.httpLines ?? ""}
middleware:
  registry:
      - name: downstream
        options:
          blobttl: 24h
          upstreams:
${upstreams}
${options.optionLines ?? ""}`;
}

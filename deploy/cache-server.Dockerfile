# Production image of the cache-server. Built by deploy/build.mjs (docs/operations.md, "Build the
# images"), which compiles and bundles the service on the build machine (esbuild: one file, no
# node_modules at run time) and runs `docker build` with a context holding:
#   main.mjs  the bundled service        start.sh  the runbook's entrypoint (deploy/offline/start.sh)
#   healthcheck.mjs  deploy/image/healthcheck.mjs
# The base is the official node:24-bookworm-slim; without a registry, `deploy/build.mjs --make-base`
# makes a stand-in of it (Debian bookworm minbase + the project's Node 24 binary).
ARG BASE_IMAGE=node:24-bookworm-slim
FROM ${BASE_IMAGE}
# declared again: an ARG before FROM is not visible after it
ARG BASE_IMAGE
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dtrcache cache-server" \
      org.opencontainers.image.description="Pull-through registry cache for Docker Trusted Registry content caches (runbook entrypoint /start.sh /config.yml)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="dtr-cache-operator" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# Memory tuning read at process start (values and reasons: cache-server/src/runtime-env.ts;
# test/contract/runtime-env.test.ts keeps the two equal).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=8 \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_TRIM_THRESHOLD_=131072
COPY start.sh /start.sh
COPY main.mjs healthcheck.mjs /app/
# the runbook's storage.filesystem.rootdirectory, owned by the app user so that a named volume
# mounted there starts out writable
RUN mkdir -p /var/lib/registry && chown node:node /var/lib/registry && chmod 0755 /start.sh
# the unprivileged "node" user (uid 1000) of the node images
USER node
EXPOSE 443
# /healthz on the debug listener (http.debug.addr, default 127.0.0.1:5001). The first check
# decides when Swarm reports the task running (engines before 25 have no --start-interval), hence
# the short interval; a check is one short node process.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 CMD ["node", "/app/healthcheck.mjs"]
# the runbook's entrypoint: /start.sh /config.yml
ENTRYPOINT ["/start.sh"]
CMD ["/config.yml"]

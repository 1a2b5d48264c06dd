# Production image of the controller (dtrcache). Built by deploy/build.mjs (docs/operations.md,
# "Build the images"), which compiles and bundles the CLI on the build machine (esbuild: one
# file, no node_modules at run time) and runs `docker build` with a context holding:
#   main.mjs  the bundled CLI        start.sh  the entrypoint (deploy/offline/start.sh)
# The base is the official node:24-bookworm-slim; without a registry, `deploy/build.mjs --make-base`
# makes a stand-in of it (Debian bookworm minbase + the project's Node 24 binary).
ARG BASE_IMAGE=node:24-bookworm-slim
FROM ${BASE_IMAGE}
# declared again: an ARG before FROM is not visible after it
ARG BASE_IMAGE
ARG VERSION=0.0.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dtrcache controller" \
      org.opencontainers.image.description="Swarm operator for Docker Trusted Registry content caches (dtrcache)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="dtr-cache-operator" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV NODE_ENV=production
COPY start.sh /start.sh
COPY main.mjs /app/
RUN mkdir -p /var/lib/dtrcache && chown node:node /var/lib/dtrcache && chmod 0755 /start.sh
# Non-root by default. Reaching the manager's Docker socket needs its group or root; Swarm
# services cannot add groups from a stack file, so deploy/stack/controller.stack.yml runs the
# task as root (access to the socket is root-equivalent anyway).
USER node
# the status endpoint (dtrcache run --listen 0.0.0.0:9090). No HEALTHCHECK in the image: the same
# image runs one-shot verbs (validate, apply, reconcile --once); a service running `dtrcache run`
# can add one on the status endpoint's /healthz.
EXPOSE 9090
ENTRYPOINT ["/start.sh"]

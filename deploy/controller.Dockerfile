# Production image of the controller. Build from the repository root:
#   docker build -f deploy/controller.Dockerfile -t dtrcache/controller:$(node -p 'require("./controller/package.json").version') .
# Needs the node:24-bookworm-slim base image from a registry; on machines without one, use
# deploy/offline/build.mjs (FROM scratch with the project's own Node 24 binary) instead.

# --- build: compile the workspace and bundle the service into one file (no node_modules at run time)
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY crds/package.json crds/
COPY controller/package.json controller/
COPY cache-server/package.json cache-server/
COPY test/package.json test/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY crds crds
COPY controller controller
COPY cache-server cache-server
RUN npx tsc -b controller \
 && npx esbuild controller/dist/cli/main.js --bundle --platform=node --target=node24 --format=esm --external:cpu-features "--external:*.node" \
      --banner:js='import { createRequire as __createRequire } from "node:module"; import { fileURLToPath as __fileURLToPath } from "node:url"; import { dirname as __pathDirname } from "node:path"; const require = __createRequire(import.meta.url); const __filename = __fileURLToPath(import.meta.url); const __dirname = __pathDirname(__filename);' \
      --outfile=/out/main.mjs

# --- run: node and the bundle, as the unprivileged "node" user
FROM node:24-bookworm-slim
ENV NODE_ENV=production
COPY --from=build /out/main.mjs /app/main.mjs
COPY deploy/offline/start.sh /start.sh
RUN mkdir -p /var/lib/dtrcache && chown node:node /var/lib/dtrcache
# Non-root by default. Reaching the manager's Docker socket needs its group or root; Swarm
# services cannot add groups from a stack file, so deploy/stack/controller.stack.yml runs the
# task as root (access to the socket is root-equivalent anyway).
USER node
# the status endpoint (dtrcache run --listen 0.0.0.0:9090)
EXPOSE 9090
# the runbook's entrypoint: /start.sh /config.yml
ENTRYPOINT ["/start.sh"]


import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Tests run against TypeScript sources; cross-package imports are pointed at src so that a
// unit test never depends on a stale build.
const src = (pkg: string): string => fileURLToPath(new URL(`./${pkg}/src/index.ts`, import.meta.url));
const alias = {
  "@dtrcache/config-yml": src("config-yml"),
  "@dtrcache/crds": src("crds"),
  "@dtrcache/cache-server": src("cache-server"),
  "@dtrcache/controller": src("controller"),
};

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: "unit",
          include: [
            "config-yml/src/**/*.test.ts",
            "crds/src/**/*.test.ts",
            "controller/src/**/*.test.ts",
            "cache-server/src/**/*.test.ts",
            "test/dtr-emulator/**/*.test.ts",
            "test/security/**/*.test.ts",
            "test/monitoring/**/*.test.ts",
            "test/contract/**/*.test.ts",
          ],
          exclude: ["**/dist/**", "**/node_modules/**"],
        },
      },
      {
        resolve: { alias },
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: ["**/dist/**", "**/node_modules/**"],
          globalSetup: ["test/vitest.globalsetup.ts"],
          // One private engine is shared by every integration file; files run one after another
          // so that tests which touch swarm-wide state (node labels) never race.
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});

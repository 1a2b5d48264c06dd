// The steps of docs/operations.md that are executed, in the guide's order. One list for the
// integration test that runs them and the unit test that checks the guide still has them.
export const OPERATIONS_GUIDE = "docs/operations.md";

export const OPERATIONS_STEPS = [
  "environment",
  "build-images",
  "install-cli",
  "swarm-objects",
  "deploy-stack",
  "spec-file",
  "apply",
  "watch",
  "pull",
  "day-2",
  "rotate-tls",
  "rotate-tls-cleanup",
  "rotate-admin-password",
  "rotate-status-token",
  "upgrade",
  "uninstall",
] as const;

export type OperationsStep = (typeof OPERATIONS_STEPS)[number];

// Exit codes of every dtrcache verb, and the error that carries one. Scripts match on the code.
export const EXIT = {
  ok: 0,
  /** Not converged in time, a resource not found, or a runtime failure. */
  notReady: 1,
  /** Bad command line, or an invalid spec / change refused by admission: nothing was changed. */
  invalid: 2,
  /** The engine (or the status endpoint) cannot be reached, or is not a swarm manager. */
  unreachable: 3,
  /** Another writer changed the resource first (optimistic concurrency): nothing was written. */
  conflict: 4,
  /** A one-shot converge refused: another live controller holds this owner id's lease. */
  leaseHeld: 5,
} as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

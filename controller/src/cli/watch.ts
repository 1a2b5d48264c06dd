// `dtrcache status --watch`: asks again every interval and prints the view only when it changed
// (with the time), like `kubectl get -w`. An unreachable endpoint is a line, not the end: a
// controller restarting (or a standby taking over) is exactly what one watches for.
export interface WatchOptions {
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  readonly write: (text: string) => void;
  readonly now?: () => Date;
}

export async function watchView(render: () => Promise<string>, options: WatchOptions): Promise<void> {
  const now = options.now ?? (() => new Date());
  let last: string | undefined;
  while (!options.signal.aborted) {
    let view: string;
    try {
      view = await render();
    } catch (error) {
      view = `(${error instanceof Error ? error.message : String(error)})`;
    }
    if (view !== last) {
      options.write(`--- ${now().toISOString()}\n${view}\n`);
      last = view;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.intervalMs);
      options.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
}

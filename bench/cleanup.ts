/** One cleanup step of a benchmark: what it does (for the error line) and the doing. */
export type CleanupStep = [what: string, step: () => Promise<unknown>];

/**
 * A benchmark's cleanup: every step runs whatever the ones before it did (a failure is printed, not thrown), and
 * only once however often it is called. SIGINT and SIGTERM run it too, after `onSignal`, then exit 130. The steps
 * are read when the cleanup starts, so they see what the benchmark made by then.
 */
export function cleanupOnce(
  label: string,
  steps: () => CleanupStep[],
  onSignal?: () => void,
): () => Promise<void> {
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const [what, step] of steps()) {
        try {
          await step();
        } catch (error) {
          console.error(`${label}: could not ${what}: ${(error as Error).message}`);
        }
      }
    })();
    return cleaning;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      onSignal?.();
      console.error(`\n${label}: ${signal}, cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  return cleanup;
}

import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, ConnectionError, type ApiClient } from './client.ts';
import { backfillText, queuedLine, stageLabel, stageTail } from './format.ts';
import { LiveProgress, type ProgressOutput, type ProgressRow } from './progress.ts';
import { stageViews, type StageView } from './stages.ts';
import { TERMINAL, type Backfill, type RunDetail } from './types.ts';

// Following a run or a backfill until it finishes: poll, show, and stop early on Ctrl-C.

export interface WatchOptions {
  /** How often to ask the service. */
  intervalMs: number;
  /** Aborted (Ctrl-C): stop waiting, leave the run alone. */
  signal: AbortSignal;
  /** Where the progress goes; none with `--json`. */
  out?: ProgressOutput;
  /** Writes the notes about a service that stopped answering for a moment. */
  warn: (line: string) => void;
  /**
   * How long the service may stay unreachable (or answer 5xx) before waiting gives up.
   * @default 30000
   */
  outageMs?: number;
}

/** A restart or a deploy of the service is not the run's end: keep polling through it for a while. */
const transient = (error: unknown): boolean =>
  error instanceof ConnectionError ||
  (error instanceof ApiError && (error.status >= 500 || error.status === 429));

/** Polls until `finished` says so; undefined when the signal stopped it first. */
async function poll<T>(
  get: (signal: AbortSignal) => Promise<T>,
  finished: (value: T) => boolean,
  options: WatchOptions,
): Promise<T | undefined> {
  let failingSince: number | undefined;
  for (;;) {
    if (options.signal.aborted) return undefined;
    try {
      const value = await get(options.signal);
      if (failingSince !== undefined) options.warn('the service answers again');
      failingSince = undefined;
      if (finished(value)) return value;
    } catch (error) {
      if (options.signal.aborted) return undefined;
      if (!transient(error)) throw error;
      if (failingSince === undefined) {
        failingSince = Date.now();
        options.warn(`the service did not answer (${(error as Error).message}); still trying`);
      } else if (Date.now() - failingSince > (options.outageMs ?? 30_000)) throw error;
    }
    await sleep(options.intervalMs, undefined, { signal: options.signal }).catch(() => undefined);
  }
}

function stageRow(view: StageView): ProgressRow {
  return {
    label: stageLabel(view),
    fraction: view.state === 'done' ? 1 : view.state === 'running' ? null : 0,
    text: (now) => stageTail(view, now),
    signature: JSON.stringify([view.state, view.records, view.attempt, view.runAttempt, view.error?.reason]),
  };
}

/** Follows a run with one bar per stage of its plan; returns it finished, or undefined if interrupted. */
export async function watchRun(
  client: ApiClient,
  id: number,
  options: WatchOptions,
): Promise<RunDetail | undefined> {
  const display = options.out ? new LiveProgress(options.out) : undefined;
  let queued = '';
  try {
    return await poll(
      (signal) => client.getRun(id, signal),
      (run) => {
        if (display) {
          const line = queuedLine(run);
          if (line && line !== queued) display.note(line);
          queued = line;
          display.update(stageViews(run).map(stageRow));
        }
        return TERMINAL.has(run.status);
      },
      options,
    );
  } finally {
    display?.stop();
  }
}

/** Follows a backfill with one bar of windows finished out of all; returns it finished, or undefined if interrupted. */
export async function watchBackfill(
  client: ApiClient,
  id: string,
  options: WatchOptions,
): Promise<Backfill | undefined> {
  const display = options.out ? new LiveProgress(options.out) : undefined;
  try {
    return await poll(
      (signal) => client.getBackfill(id, signal),
      (b) => {
        const p = b.progress;
        const done = p.completed + p.failed + p.cancelled;
        display?.update([
          {
            label: '  windows',
            fraction: p.total === 0 ? 1 : done / p.total,
            text: (now) => backfillText(b, now),
            signature: JSON.stringify([b.status, p, b.counts.fetched]),
          },
        ]);
        return TERMINAL.has(b.status);
      },
      options,
    );
  } finally {
    display?.stop();
  }
}

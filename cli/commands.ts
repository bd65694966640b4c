import type { ApiClient, CreateRunParams } from './client.ts';
import {
  backfillDetailLines,
  backfillHeadline,
  backfillOutcomeLines,
  outcomeLines,
  queuedLine,
  runDetailLines,
  runHeadline,
  runsTable,
  sourceSchemaLines,
  stageLabel,
  stageTail,
} from './format.ts';
import { staticBar, type ProgressOutput } from './progress.ts';
import { stageViews } from './stages.ts';
import { watchBackfill, watchRun } from './watch.ts';

// What each command does, once main.ts has parsed it. Each returns the exit code; API and connection errors
// are thrown and main.ts turns them into exit code 3.

export const EXIT = { ok: 0, failed: 1, usage: 2, api: 3, internal: 70, interrupted: 130 } as const;

/** How the hints the CLI prints name itself. */
export const CLI = 'npx afluente';

export interface Context {
  client: ApiClient;
  /** `--json`: the API's JSON, as it came, instead of text. */
  json: boolean;
  out: ProgressOutput;
  err: ProgressOutput;
  /** How often `--wait` polls. */
  intervalMs: number;
}

const print = (ctx: Context, lines: string[] | string): void => {
  for (const line of typeof lines === 'string' ? [lines] : lines) ctx.out.write(`${line}\n`);
};
const printErr = (ctx: Context, lines: string[]): void => {
  for (const line of lines) ctx.err.write(`${line}\n`);
};
const printJson = (ctx: Context, value: unknown): void => {
  ctx.out.write(`${JSON.stringify(value, null, 2)}\n`);
};

/** Waits while Ctrl-C has not been pressed; Ctrl-C aborts the signal instead of killing the process. */
async function untilInterrupted<T>(wait: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    return await wait(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function followRun(ctx: Context, id: number): Promise<number> {
  const run = await untilInterrupted((signal) =>
    watchRun(ctx.client, id, {
      intervalMs: ctx.intervalMs,
      signal,
      out: ctx.json ? undefined : ctx.out,
      warn: (line) => printErr(ctx, [line]),
    }),
  );
  if (!run) {
    printErr(ctx, [
      `stopped waiting: run ${id} goes on in the service`,
      `  follow it: ${CLI} show ${id} --wait`,
      `  cancel it: ${CLI} cancel ${id}`,
    ]);
    return EXIT.interrupted;
  }
  if (ctx.json) printJson(ctx, run);
  else if (run.status === 'COMPLETED') print(ctx, outcomeLines(run, CLI));
  else printErr(ctx, outcomeLines(run, CLI));
  return run.status === 'COMPLETED' ? EXIT.ok : EXIT.failed;
}

export async function run(
  ctx: Context,
  source: string,
  options: CreateRunParams & { idempotencyKey?: string; engine?: string; wait?: boolean },
): Promise<number> {
  const params: CreateRunParams = {};
  if (options.from !== undefined) params.from = options.from;
  if (options.to !== undefined) params.to = options.to;
  if (options.cursor !== undefined) params.cursor = options.cursor;
  const created = await ctx.client.createRun(source, params, {
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
  });
  if (!ctx.json) {
    print(ctx, `run ${created.id} of ${created.source} created: ${ctx.client.url(created.links.self)}`);
    const queued = queuedLine(created);
    if (queued && !options.wait) print(ctx, queued);
  }
  if (options.wait) return followRun(ctx, created.id);
  if (ctx.json) printJson(ctx, created);
  else print(ctx, `follow it: ${CLI} show ${created.id} --wait`);
  return EXIT.ok;
}

export async function runs(
  ctx: Context,
  query: { source?: string; status?: string; limit?: number; cursor?: string },
): Promise<number> {
  const page = await ctx.client.listRuns(query);
  if (ctx.json) {
    printJson(ctx, page);
    return EXIT.ok;
  }
  print(ctx, runsTable(page, Date.now()));
  if (page.nextCursor) print(ctx, `more: ${CLI} runs --cursor ${page.nextCursor}`);
  return EXIT.ok;
}

export async function show(ctx: Context, id: number, options: { wait?: boolean } = {}): Promise<number> {
  if (options.wait) {
    if (!ctx.json) print(ctx, runHeadline(await ctx.client.getRun(id)));
    return followRun(ctx, id);
  }
  const run = await ctx.client.getRun(id);
  if (ctx.json) {
    printJson(ctx, run);
    return EXIT.ok;
  }
  const now = Date.now();
  const stages = stageViews(run).map(
    (v) => `${stageLabel(v)} ${staticBar(v.state === 'done' ? 1 : 0)} ${stageTail(v, now)}`,
  );
  print(ctx, runDetailLines(run, stages, now));
  return EXIT.ok;
}

export async function cancel(ctx: Context, id: number, reason?: string): Promise<number> {
  const run = await ctx.client.cancelRun(id, reason);
  if (ctx.json) printJson(ctx, run);
  else print(ctx, outcomeLines(run, CLI));
  return EXIT.ok;
}

export async function retry(
  ctx: Context,
  id: number,
  options: { engine?: string; acceptKeyChange?: boolean; wait?: boolean },
): Promise<number> {
  const run = await ctx.client.retryRun(id, options.engine, { acceptKeyChange: options.acceptKeyChange });
  if (!ctx.json)
    print(
      ctx,
      `run ${run.id} retried as attempt ${run.attempt}` +
        `${run.stage ? ` from stage ${run.stage}` : ''}` +
        `${options.engine ? ` on engine ${options.engine}` : ''}` +
        `${options.acceptKeyChange ? ', accepting a key change' : ''}: ${ctx.client.url(run.links.self)}`,
    );
  if (options.wait) return followRun(ctx, run.id);
  if (ctx.json) printJson(ctx, run);
  return EXIT.ok;
}

export async function schema(
  ctx: Context,
  source: string,
  options: { from?: number; to?: number },
): Promise<number> {
  const view = await ctx.client.getSourceSchema(source, options);
  if (ctx.json) printJson(ctx, view);
  else print(ctx, sourceSchemaLines(view, CLI));
  return EXIT.ok;
}

async function followBackfill(ctx: Context, id: string): Promise<number> {
  const backfill = await untilInterrupted((signal) =>
    watchBackfill(ctx.client, id, {
      intervalMs: ctx.intervalMs,
      signal,
      out: ctx.json ? undefined : ctx.out,
      warn: (line) => printErr(ctx, [line]),
    }),
  );
  if (!backfill) {
    printErr(ctx, [
      `stopped waiting: backfill ${id} goes on in the service`,
      `  follow it: ${CLI} backfill-status ${id} --wait`,
      `  cancel it: ${CLI} backfill-cancel ${id}`,
    ]);
    return EXIT.interrupted;
  }
  const ok = backfill.status === 'COMPLETED' && backfill.progress.failed === 0;
  if (ctx.json) printJson(ctx, backfill);
  else if (ok) print(ctx, backfillOutcomeLines(backfill, CLI));
  else printErr(ctx, backfillOutcomeLines(backfill, CLI));
  return ok ? EXIT.ok : EXIT.failed;
}

export async function backfill(
  ctx: Context,
  source: string,
  options: { from: string; to: string; step: string; wait?: boolean },
): Promise<number> {
  const created = await ctx.client.createBackfill(source, {
    from: options.from,
    to: options.to,
    step: options.step,
  });
  if (!ctx.json) print(ctx, [backfillHeadline(created), `  ${ctx.client.url(created.links.self)}`]);
  if (options.wait) return followBackfill(ctx, String(created.id));
  if (ctx.json) printJson(ctx, created);
  else print(ctx, `follow it: ${CLI} backfill-status ${created.id} --wait`);
  return EXIT.ok;
}

export async function backfillStatus(ctx: Context, id: string, options: { wait?: boolean }): Promise<number> {
  if (options.wait) {
    if (!ctx.json) print(ctx, backfillHeadline(await ctx.client.getBackfill(id)));
    return followBackfill(ctx, id);
  }
  const b = await ctx.client.getBackfill(id);
  if (ctx.json) printJson(ctx, b);
  else print(ctx, backfillDetailLines(b, Date.now()));
  return EXIT.ok;
}

export async function backfillCancel(ctx: Context, id: string): Promise<number> {
  const b = await ctx.client.cancelBackfill(id);
  if (ctx.json) printJson(ctx, b);
  else print(ctx, backfillHeadline(b));
  return EXIT.ok;
}

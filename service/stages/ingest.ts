import type { EntityManager, MikroORM } from '@mikro-orm/mysql';
import type { IngestContinuation, IngestManifest, IngestRequest } from '../../contract/ingest.ts';
import { runDate } from '../../contract/lake-layout.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import type { Config } from '../config/env.ts';
import type { LoadedSource } from '../config/sources.ts';
import type { InvocationEvents } from '../invocation/events.ts';
import { invokeAndWait } from '../invocation/invoke-and-wait.ts';
import { sourceOf } from './source-of.ts';
import type { LambdaInvoker } from '../invocation/invoker.ts';
import { NonRetryableError, StageError, type StageHandler } from '../orchestration/stage-handler.ts';
import { Job, SourceState } from '../state/entities/index.ts';

export interface IngestStageDeps {
  orm: MikroORM;
  lake: Lake;
  invoker: LambdaInvoker;
  events: InvocationEvents;
  sources: ReadonlyMap<string, LoadedSource>;
  limits: Config['ingest'];
  /** How long the whole stage may take (the catalog's timeout); it becomes the Lambda's deadline. */
  timeoutMs: number;
}

/** How late a result may arrive after the function's own time limit (cold start, destination, SQS). */
const RESULT_GRACE_MS = 120_000;

/** What the ingest job keeps in its params between invocations, so a restarted worker resumes at the seam. */
interface IngestProgress {
  continuation: IngestContinuation | null;
  invocations: number;
}

/**
 * The ingest stage as the worker runs it: invoke the ingest Lambda, wait for its result event, and invoke it
 * again with the continuation until the source is exhausted; then read the manifest and report its files. The
 * cursor is not advanced here: only the transaction that completes the run does that.
 */
export function ingestStage(deps: IngestStageDeps): StageHandler<'ingest'> {
  return async (ctx) => {
    const source = sourceOf(deps.sources, ctx.run);
    const { name, schemaPath: _schemaPath, schemaDocument: _schemaDocument, ...config } = source;
    // A run with a window pulls that slice of history: it neither sends the cursor nor moves it.
    const window = ctx.run.params?.window ?? null;
    if (window && !config.window)
      throw new NonRetryableError(
        'no_window_params',
        `source "${name}" has no \`window\` in its config, so run ${ctx.run.id}'s window cannot be sent to its API`,
      );
    const cursor = window
      ? null
      : (ctx.run.params?.cursor ??
        (await storedCursor(deps.orm, name)) ??
        config.incremental?.initial ??
        null);
    const progress = (ctx.job.params?.ingest as IngestProgress | undefined) ?? {
      continuation: null,
      invocations: 0,
    };
    // The catalog's timeout is per attempt, and so is the deadline the Lambda works to.
    const deadline = Date.now() + deps.timeoutMs;

    for (;;) {
      const invocationId = `job-${ctx.job.id}.${ctx.job.attempt}.${progress.invocations}`;
      const request: IngestRequest = {
        invocationId,
        runId: ctx.run.id,
        jobId: ctx.job.id,
        source: name,
        config,
        dt: runDate(ctx.run.createdAt),
        lakeRoot: deps.lake.root,
        cursor,
        window,
        continuation: progress.continuation,
        limits: { ...deps.limits, deadline },
      };
      await deps.orm.em.fork().nativeUpdate(Job, { id: ctx.job.id }, { externalId: invocationId });
      const result = await invokeAndWait(
        deps,
        ctx.signal,
        'ingest',
        request,
        deps.limits.timeLimitMs + RESULT_GRACE_MS,
      );
      progress.invocations += 1;
      switch (result.kind) {
        case 'continue':
          progress.continuation = result.continuation;
          await saveProgress(deps.orm, ctx.job.id, progress);
          ctx.logger.info(
            { records: result.records, pages: result.pages, retries: result.retries },
            'ingest continues in a new invocation',
          );
          continue;
        case 'failed': {
          const { reason, message, httpStatus, url, retryable } = result.error;
          const details = {
            ...(httpStatus === undefined ? {} : { httpStatus }),
            ...(url === undefined ? {} : { url }),
          };
          // The saved continuation still points just past the last committed segment, so a retry resumes there.
          throw retryable
            ? new StageError(reason, message, details)
            : new NonRetryableError(reason, message, details);
        }
        case 'done': {
          const manifest = JSON.parse(
            (await deps.lake.getBytes(result.manifestKey)).toString('utf8'),
          ) as IngestManifest;
          return {
            counts: { fetched: manifest.records },
            ...(window ? {} : { cursor: manifest.nextCursor }),
            files: manifest.files.map((f) => ({
              uri: deps.lake.uri(f.key),
              layer: 'raw' as const,
              records: f.records,
              bytes: f.bytes,
              sha256: f.sha256,
            })),
            metrics: {
              pages: manifest.pages,
              // Page requests retried (a 429, a 5xx, a timeout): how hard the source was to read.
              retries: manifest.retries ?? 0,
              bytes: manifest.bytes,
              files: manifest.files.length,
              invocations: progress.invocations,
              manifest: deps.lake.uri(result.manifestKey),
              nextCursor: manifest.nextCursor,
            },
          };
        }
      }
    }
  };
}

async function storedCursor(orm: MikroORM, source: string): Promise<string | null> {
  const state = await orm.em.fork().findOne(SourceState, source);
  return state?.cursor ?? null;
}

async function saveProgress(orm: MikroORM, jobId: number, progress: IngestProgress): Promise<void> {
  const em = orm.em.fork() as EntityManager;
  const job = await em.findOneOrFail(Job, jobId, { fields: ['params'] });
  await em.nativeUpdate(Job, { id: jobId }, { params: { ...job.params, ingest: progress } });
}

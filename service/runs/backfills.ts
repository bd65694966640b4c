import { UniqueConstraintViolationException, type EntityManager, type MikroORM } from '@mikro-orm/mysql';
import { DateTime, Duration } from 'luxon';
import { createHash } from 'node:crypto';
import { STAGES } from '../../contract/stages.ts';
import { BadRequestError, ConflictError, NotFoundError, UnprocessableError } from '../errors.ts';
import type { Dependencies } from '../observability/dependencies.ts';
import type { Logger } from '../observability/logger.ts';
import { Backfill, Run } from '../state/entities/index.ts';
import { Status, Trigger, isTerminal } from '../state/status.ts';
import type { Admission } from './admission.ts';
import type { RunService, SourceLimits } from './run-service.ts';

/** A backfill of more windows than this is refused: split it, or take a longer step. */
export const MAX_BACKFILL_WINDOWS = 1000;

export interface CreateBackfillInput {
  source: string;
  from: string;
  to: string;
  /** An ISO-8601 duration: P1D, PT6H, P1W. */
  step: string;
}

export interface BackfillDetail {
  backfill: Backfill;
  runs: Run[];
}

/**
 * Backfills: one run per window of a time range, tracked together. The runs are created waiting, oldest window
 * first, and the source's `maxActiveRuns` admits them as slots free, so a backfill never runs more at once than
 * the source allows, whatever its `onActiveRun`, and never jumps ahead of runs that were already waiting.
 */
export class BackfillService {
  private readonly orm: MikroORM;
  private readonly logger: Logger;
  private readonly sources: () => ReadonlyMap<string, SourceLimits>;
  private readonly admission: Admission;
  private readonly runs: RunService;
  private readonly dependencies: Pick<Dependencies, 'require' | 'failed'>;

  constructor(deps: {
    orm: MikroORM;
    logger: Logger;
    sources: () => ReadonlyMap<string, SourceLimits>;
    admission: Admission;
    runs: RunService;
    /** A backfill is refused with a 503 while Redis is down, as POST /runs is. */
    dependencies: Pick<Dependencies, 'require' | 'failed'>;
  }) {
    this.orm = deps.orm;
    this.logger = deps.logger;
    this.dependencies = deps.dependencies;
    this.sources = deps.sources;
    this.admission = deps.admission;
    this.runs = deps.runs;
  }

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  async create(
    input: CreateBackfillInput,
    by: string,
    idempotencyKey?: string,
  ): Promise<{ detail: BackfillDetail; replayed: boolean }> {
    const source = this.sources().get(input.source);
    if (!source) throw new NotFoundError(`source "${input.source}" not found`);
    if (!source.window)
      throw new BadRequestError(
        `source "${input.source}" has no \`window\` in its config, so its API cannot be asked for a window: ` +
          'add `window: { fromParam, toParam }` to backfill it',
      );
    const windows = splitWindows(input);
    const requestHash = idempotencyKey ? hashRequest(input) : null;
    if (idempotencyKey) {
      const existing = await this.findByKey(idempotencyKey, requestHash);
      if (existing) return { detail: await this.get(existing.id), replayed: true };
    }

    let id: number;
    try {
      id = await this.em().transactional(async (em) => {
        // Under the source's admission lock, so no trigger slips a run in between the windows.
        await this.admission.lock(em, input.source);
        this.dependencies.require(
          'redis',
          'no backfill was created; retry the request (with the same Idempotency-Key it makes one backfill)',
        );
        const backfill = em.create(Backfill, {
          source: input.source,
          windowFrom: windows[0]!.from,
          windowTo: windows.at(-1)!.to,
          step: input.step,
          windows: windows.length,
          createdBy: by,
          idempotencyKey: idempotencyKey ?? null,
          requestHash,
        });
        for (const window of windows)
          em.create(Run, {
            source: input.source,
            trigger: Trigger.Backfill,
            plan: [...STAGES],
            params: { window: { from: window.from.toISOString(), to: window.to.toISOString() } },
            backfill,
          });
        await em.flush();
        return backfill.id;
      });
    } catch (error) {
      if (idempotencyKey && error instanceof UniqueConstraintViolationException) {
        const existing = await this.findByKey(idempotencyKey, requestHash);
        if (existing) return { detail: await this.get(existing.id), replayed: true };
      }
      throw error;
    }
    this.logger.info(
      { backfill: id, source: input.source, windows: windows.length, by },
      'created a backfill; its runs wait for slots',
    );
    // The windows start as slots allow; the dispatcher's sweep admits them if this fails.
    await this.admission.admit(input.source).catch((error: unknown) => {
      this.dependencies.failed(error, 'could not admit the backfill’s first runs yet', {
        bindings: { backfill: id },
      });
    });
    return { detail: await this.get(id), replayed: false };
  }

  async get(id: number): Promise<BackfillDetail> {
    const em = this.em();
    const backfill = await em.findOne(Backfill, id);
    if (!backfill) throw new NotFoundError(`backfill ${id} not found`);
    const runs = await em.find(Run, { backfill: id }, { orderBy: { id: 'asc' } });
    return { backfill, runs };
  }

  /** Cancels every run of the backfill that has not finished, the waiting ones first so none is admitted. */
  async cancel(id: number, by: string): Promise<BackfillDetail> {
    const { runs } = await this.get(id);
    const open = runs.filter((r) => !isTerminal(r.status)).reverse();
    if (open.length === 0)
      throw new ConflictError(`backfill ${id} has no unfinished runs: every one of its ${runs.length} ended`);
    for (const run of open) {
      await this.runs.cancel(run.id, by).catch((error: unknown) => {
        // It finished meanwhile: nothing left to cancel.
        if (!(error instanceof ConflictError)) throw error;
      });
    }
    return this.get(id);
  }

  private async findByKey(key: string, requestHash: string | null): Promise<Backfill | null> {
    const existing = await this.em().findOne(Backfill, { idempotencyKey: key });
    if (existing && existing.requestHash !== requestHash)
      throw new UnprocessableError(
        `Idempotency-Key "${key}" was already used for a different backfill (${existing.id}); use a new key`,
      );
    return existing;
  }
}

/** A backfill's status, from its runs: running while any is, else failed or cancelled if any was. */
export function backfillStatus(runs: Pick<Run, 'status'>[]): Status {
  if (runs.some((r) => !isTerminal(r.status))) return Status.Running;
  if (runs.some((r) => r.status === Status.Failed)) return Status.Failed;
  if (runs.some((r) => r.status === Status.Cancelled)) return Status.Cancelled;
  return Status.Completed;
}

/**
 * Splits [from, to) into windows of `step`, the last one cut at `to`. Steps are added in UTC, so P1D is 24 hours
 * and P1M a calendar month.
 */
export function splitWindows(input: Pick<CreateBackfillInput, 'from' | 'to' | 'step'>): {
  from: Date;
  to: Date;
}[] {
  const from = instant(input.from, 'from');
  const to = instant(input.to, 'to');
  if (from >= to) throw new BadRequestError('body.from must be before body.to');
  const step = Duration.fromISO(input.step);
  if (!step.isValid || step.toMillis() <= 0)
    throw new BadRequestError(
      `body.step must be a positive ISO-8601 duration such as P1D, PT6H or P1W (got "${input.step}")`,
    );
  const windows: { from: Date; to: Date }[] = [];
  let start = from;
  while (start < to) {
    if (windows.length === MAX_BACKFILL_WINDOWS)
      throw new BadRequestError(
        `body: ${input.from} to ${input.to} in steps of ${input.step} makes more than ${MAX_BACKFILL_WINDOWS} ` +
          'windows; take a longer step or split the range',
      );
    const next = start.plus(step);
    windows.push({ from: start.toJSDate(), to: (next < to ? next : to).toJSDate() });
    start = next;
  }
  return windows;
}

function instant(text: string, field: 'from' | 'to'): DateTime {
  const at = DateTime.fromISO(text, { zone: 'utc', setZone: false });
  if (!at.isValid)
    throw new BadRequestError(`body.${field} must be an ISO-8601 date or date-time (got "${text}")`);
  return at.toUTC();
}

function hashRequest(input: CreateBackfillInput): string {
  const canonical = JSON.stringify([input.source, input.from, input.to, input.step]);
  return createHash('sha256').update(canonical).digest('hex');
}

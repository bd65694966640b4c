import { describe, expect, it } from 'vitest';
import { latestCompleted, runFunnel } from '../../ui/src/funnel.ts';
import type { Job, RunDetail } from '../../ui/src/types.ts';

let nextId = 1;
function job(fields: Partial<Job> & Pick<Job, 'stage'>): Job {
  return {
    id: nextId++,
    runAttempt: 1,
    status: 'COMPLETED',
    attempt: 1,
    maxAttempts: 3,
    externalId: null,
    engine: null,
    engineReason: null,
    heartbeatAt: null,
    params: null,
    metrics: null,
    error: null,
    createdAt: '2025-01-01T00:00:00Z',
    startedAt: null,
    finishedAt: null,
    deadlineAt: null,
    ...fields,
  };
}

const targets = {
  orders: { table: 'public.orders', replace: 'per key' },
  order_items: { table: 'public.order_items', replace: 'per parent' },
};

// The shapes of a real demo run's GET /runs/:id (transform metrics.tables and duplicates, load metrics.stale).
function completedRun(): Pick<RunDetail, 'counts' | 'jobs'> {
  return {
    counts: { fetched: 1000, valid: 990, rejected: 10, rows: { orders: 980, order_items: 2100 } },
    jobs: [
      job({ stage: 'ingest' }),
      job({ stage: 'validate' }),
      job({
        stage: 'transform',
        metrics: { duplicates: 5, tables: { order_items: 2100, orders: 985 } },
      }),
      job({
        stage: 'load',
        params: { targets },
        metrics: { rows: {}, stale: { orders: 5, order_items: 0 } },
      }),
    ],
  };
}

describe('runFunnel', () => {
  it('reconciles fetched = valid + rejected, valid = parent rows + duplicates, curated = loaded + stale', () => {
    const f = runFunnel(completedRun());
    expect(f).toMatchObject({
      fetched: 1000,
      valid: 990,
      rejected: 10,
      validBalanced: true,
      parentRows: 985,
      duplicates: 5,
      parentBalanced: true,
    });
    expect(f.tables).toEqual([
      { table: 'order_items', curated: 2100, loaded: 2100, stale: 0, balanced: true, parent: false },
      { table: 'orders', curated: 985, loaded: 980, stale: 5, balanced: true, parent: true },
    ]);
  });

  it('says where the counts do not add up', () => {
    const run = completedRun();
    run.counts = { ...run.counts, rejected: 11, rows: { orders: 979, order_items: 2100 } };
    const f = runFunnel(run);
    expect(f.validBalanced).toBe(false);
    expect(f.tables.find((t) => t.table === 'orders')?.balanced).toBe(false);
  });

  it('leaves what is not known yet unknown, not unbalanced', () => {
    const f = runFunnel({
      counts: { fetched: 1000, valid: null, rejected: null, rows: null },
      jobs: [job({ stage: 'ingest' }), job({ stage: 'validate', status: 'RUNNING' })],
    });
    expect(f).toMatchObject({ validBalanced: null, parentRows: null, parentBalanced: null, tables: [] });
  });

  it('takes the parent as the first table written when the load has no params yet', () => {
    const f = runFunnel({
      counts: { fetched: 10, valid: 10, rejected: 0, rows: null },
      jobs: [
        job({ stage: 'transform', metrics: { duplicates: 0, tables: { orders: 10, order_items: 30 } } }),
      ],
    });
    expect(f.parentRows).toBe(10);
    expect(f.parentBalanced).toBe(true);
    expect(f.tables.map((t) => [t.table, t.loaded, t.stale, t.balanced])).toEqual([
      ['orders', null, null, null],
      ['order_items', null, null, null],
    ]);
  });
});

describe('latestCompleted', () => {
  it("takes the latest attempt's completed job of a stage", () => {
    const first = job({ stage: 'load', status: 'FAILED' });
    const retried = job({ stage: 'load', runAttempt: 2 });
    const older = job({ stage: 'load', runAttempt: 1 });
    expect(latestCompleted([first, retried, older], 'load')).toBe(retried);
    expect(latestCompleted([first], 'load')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { layoutTimeline } from '../../ui/src/timeline.ts';
import type { Job } from '../../ui/src/types.ts';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

let nextId = 1;
function job(fields: Partial<Job> & Pick<Job, 'stage' | 'status'>): Job {
  return {
    id: nextId++,
    runAttempt: 1,
    attempt: 1,
    maxAttempts: 3,
    externalId: null,
    engine: null,
    engineReason: null,
    heartbeatAt: null,
    params: null,
    metrics: null,
    error: null,
    createdAt: at(0),
    startedAt: null,
    finishedAt: null,
    deadlineAt: null,
    ...fields,
  };
}

describe('layoutTimeline', () => {
  it('places each job on one axis from the first queued to the last finished, its wait before its bar', () => {
    const t = layoutTimeline(
      [
        job({
          stage: 'validate',
          status: 'COMPLETED',
          createdAt: at(10),
          startedAt: at(20),
          finishedAt: at(40),
        }),
        job({ stage: 'ingest', status: 'COMPLETED', createdAt: at(0), startedAt: at(0), finishedAt: at(10) }),
      ],
      T0 + 1000_000,
    );
    expect(t.start).toBe(T0);
    expect(t.end).toBe(T0 + 40_000);
    expect(t.bars.map((b) => b.job.stage)).toEqual(['ingest', 'validate']);
    const [ingest, validate] = t.bars;
    expect(ingest).toMatchObject({ left: 0, width: 25, waitWidth: 0, durationMs: 10_000, open: false });
    expect(validate).toMatchObject({ waitLeft: 25, waitWidth: 25, left: 50, width: 50, durationMs: 20_000 });
  });

  it('grows a running job to now, and shows a queued one as its wait alone', () => {
    const now = T0 + 30_000;
    const t = layoutTimeline(
      [
        job({ stage: 'ingest', status: 'RUNNING', createdAt: at(0), startedAt: at(10) }),
        job({ stage: 'validate', status: 'PENDING', createdAt: at(20) }),
      ],
      now,
    );
    expect(t.end).toBe(now);
    expect(t.bars[0]).toMatchObject({ open: true, durationMs: 20_000 });
    expect(t.bars[0]?.left).toBeCloseTo(33.33, 1);
    expect(t.bars[0]?.width).toBeCloseTo(66.67, 1);
    expect(t.bars[1]).toMatchObject({ width: 0, durationMs: null });
    expect(t.bars[1]?.waitLeft).toBeCloseTo(66.67, 1);
    expect(t.bars[1]?.waitWidth).toBeCloseTo(33.33, 1);
  });

  it("orders a retried run's attempts one after the other, stage by stage", () => {
    const t = layoutTimeline(
      [
        job({
          stage: 'load',
          status: 'COMPLETED',
          runAttempt: 2,
          createdAt: at(50),
          startedAt: at(50),
          finishedAt: at(60),
        }),
        job({ stage: 'ingest', status: 'COMPLETED', createdAt: at(0), startedAt: at(0), finishedAt: at(10) }),
        job({
          stage: 'load',
          status: 'FAILED',
          attempt: 3,
          createdAt: at(10),
          startedAt: at(10),
          finishedAt: at(20),
        }),
      ],
      T0 + 100_000,
    );
    expect(t.bars.map((b) => [b.job.runAttempt, b.job.stage, b.job.status])).toEqual([
      [1, 'ingest', 'COMPLETED'],
      [1, 'load', 'FAILED'],
      [2, 'load', 'COMPLETED'],
    ]);
  });

  it('keeps a job of a few ms visible, and ticks at a round step', () => {
    const t = layoutTimeline(
      [
        job({
          stage: 'ingest',
          status: 'COMPLETED',
          createdAt: at(0),
          startedAt: at(0),
          finishedAt: at(0.001),
        }),
        job({ stage: 'load', status: 'COMPLETED', createdAt: at(0), startedAt: at(1), finishedAt: at(100) }),
      ],
      T0 + 1000_000,
    );
    expect(t.bars[0]?.width).toBeGreaterThan(0);
    expect(t.ticks.map((tick) => tick.offsetMs)).toEqual([0, 30_000, 60_000, 90_000]);
    expect(t.ticks.every((tick) => tick.left >= 0 && tick.left <= 100)).toBe(true);
  });

  it('ticks in fractions of a second for a run of a second or two', () => {
    const t = layoutTimeline(
      [
        job({
          stage: 'ingest',
          status: 'COMPLETED',
          createdAt: at(0),
          startedAt: at(0),
          finishedAt: at(1.7),
        }),
      ],
      T0 + 1000_000,
    );
    expect(t.ticks.map((tick) => tick.offsetMs)).toEqual([0, 500, 1000, 1500]);
  });

  it('is empty without jobs', () => {
    expect(layoutTimeline([], T0).bars).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { Status } from '../../service/state/status.ts';
import {
  IllegalTransitionError,
  reopenRun,
  transitionJob,
  transitionRun,
} from '../../service/state/transitions.ts';

const at = new Date('2026-01-01T00:00:00Z');

describe('the run and job state machine', () => {
  it('walks a run through PENDING → RUNNING → COMPLETED and stamps the times', () => {
    const run = { id: 7, status: Status.Pending as Status, startedAt: null, finishedAt: null };
    transitionRun(run, Status.Running, at);
    expect(run).toMatchObject({ status: 'RUNNING', startedAt: at, finishedAt: null });
    transitionRun(run, Status.Completed, at);
    expect(run).toMatchObject({ status: 'COMPLETED', finishedAt: at });
  });

  it('throws on COMPLETED → RUNNING and leaves the record as it was', () => {
    const run = { id: 7, status: Status.Completed as Status };
    expect(() => transitionRun(run, Status.Running)).toThrow(IllegalTransitionError);
    expect(() => transitionRun(run, Status.Running)).toThrow('run 7: COMPLETED → RUNNING is not allowed');
    expect(run.status).toBe('COMPLETED');
  });

  it.each([
    [Status.Pending, Status.Completed],
    [Status.Failed, Status.Running],
    [Status.Cancelled, Status.Completed],
    [Status.Completed, Status.Failed],
  ])('forbids run %s → %s', (from, to) => {
    expect(() => transitionRun({ status: from }, to)).toThrow(IllegalTransitionError);
  });

  it('lets a running job go back to PENDING (retry or release) but not a finished one', () => {
    const job = { id: 3, status: Status.Running as Status };
    transitionJob(job, Status.Pending);
    expect(job.status).toBe('PENDING');
    expect(() => transitionJob({ id: 3, status: Status.Completed }, Status.Pending)).toThrow(
      'job 3: COMPLETED → PENDING is not allowed',
    );
    expect(() => transitionRun({ id: 3, status: Status.Running }, Status.Pending)).toThrow(
      IllegalTransitionError,
    );
  });

  it('reopens only a FAILED run, for a retry, and clears its finish time', () => {
    const run = { id: 5, status: Status.Failed as Status, finishedAt: new Date() as Date | null };
    reopenRun(run);
    expect(run).toEqual({ id: 5, status: 'PENDING', finishedAt: null });
    for (const status of [Status.Completed, Status.Cancelled, Status.Running, Status.Pending])
      expect(() => reopenRun({ id: 5, status })).toThrow(
        `run 5: only a FAILED run can be reopened, not ${status}`,
      );
  });
});

import { Status } from './status.ts';

/**
 * The only place a run's or a job's status changes. Every transition not listed here is illegal and
 * throws, so a bug or a race can never silently overwrite a finished record.
 */
const RUN_TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = {
  PENDING: [Status.Running, Status.Failed, Status.Cancelled],
  RUNNING: [Status.Completed, Status.Failed, Status.Cancelled],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

// A job goes back to PENDING when it waits for a retry or is released by a worker that shuts down.
const JOB_TRANSITIONS: Readonly<Record<Status, readonly Status[]>> = {
  PENDING: [Status.Running, Status.Failed, Status.Cancelled],
  RUNNING: [Status.Completed, Status.Failed, Status.Cancelled, Status.Pending],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

export class IllegalTransitionError extends Error {
  override name = 'IllegalTransitionError';
}

interface Stateful {
  id?: number;
  status: Status;
  startedAt?: Date | null;
  finishedAt?: Date | null;
}

function move(
  kind: 'run' | 'job',
  table: typeof RUN_TRANSITIONS,
  entity: Stateful,
  to: Status,
  now: Date,
): void {
  const from = entity.status;
  if (!table[from].includes(to)) {
    throw new IllegalTransitionError(`${kind} ${entity.id ?? '(new)'}: ${from} → ${to} is not allowed`);
  }
  entity.status = to;
  if (to === Status.Running) entity.startedAt ??= now;
  if (to === Status.Completed || to === Status.Failed || to === Status.Cancelled) entity.finishedAt = now;
}

export function transitionRun(run: Stateful, to: Status, now = new Date()): void {
  move('run', RUN_TRANSITIONS, run, to, now);
}

export function transitionJob(job: Stateful, to: Status, now = new Date()): void {
  move('job', JOB_TRANSITIONS, job, to, now);
}

/**
 * The one way out of FAILED: an operator's retry reopens the run as PENDING for a new attempt (the caller bumps
 * `attempt`). It is not in RUN_TRANSITIONS, so no worker, sweep or race can ever reopen a run by accident.
 */
export function reopenRun(run: Stateful): void {
  if (run.status !== Status.Failed)
    throw new IllegalTransitionError(
      `run ${run.id ?? '(new)'}: only a FAILED run can be reopened, not ${run.status}`,
    );
  run.status = Status.Pending;
  run.finishedAt = null;
}

export function canTransitionRun(from: Status, to: Status): boolean {
  return RUN_TRANSITIONS[from].includes(to);
}

/** The status of a run or a job. Both share one vocabulary so the API and the logs read the same. */
export const Status = {
  Pending: 'PENDING',
  Running: 'RUNNING',
  Completed: 'COMPLETED',
  Failed: 'FAILED',
  Cancelled: 'CANCELLED',
} as const;
export type Status = (typeof Status)[keyof typeof Status];
export const STATUSES = Object.values(Status);

export const TERMINAL_STATUSES: ReadonlySet<Status> = new Set([
  Status.Completed,
  Status.Failed,
  Status.Cancelled,
]);

export function isTerminal(status: Status): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** What started a run. */
export const Trigger = {
  Manual: 'manual',
  Schedule: 'schedule',
  Retry: 'retry',
  Replay: 'replay',
  Backfill: 'backfill',
} as const;
export type Trigger = (typeof Trigger)[keyof typeof Trigger];

/** The lake layer a file belongs to (see DESIGN.md, "Lake layout"). */
export const Layer = {
  Raw: 'raw',
  Validated: 'validated',
  Rejected: 'rejected',
  Curated: 'curated',
} as const;
export type Layer = (typeof Layer)[keyof typeof Layer];

import type { Status } from '../types.ts';

/** A run's or a job's status as a coloured label; the text says it, the colour only repeats it. */
export function StatusBadge({ status, testId }: { status: Status; testId?: string }) {
  return (
    <span class={`status status-${status.toLowerCase()}`} data-testid={testId} data-status={status}>
      {status}
    </span>
  );
}

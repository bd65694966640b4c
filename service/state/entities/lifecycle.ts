import { p } from '@mikro-orm/core';

/**
 * The timestamps and the optimistic-lock version that runs and jobs share. `version` makes a flush of a stale
 * copy fail instead of overwriting a newer status.
 */
export const lifecycleProperties = {
  createdAt: p.datetime(3).onCreate(() => new Date()),
  updatedAt: p
    .datetime(3)
    .onCreate(() => new Date())
    .onUpdate(() => new Date()),
  startedAt: p.datetime(3).nullable(),
  finishedAt: p.datetime(3).nullable(),
  version: p.integer().unsigned().version(),
};

import { JOB_CATALOG, type JobCatalog } from '../../service/orchestration/catalog.ts';

/** The shipped job catalog with two attempts per stage and 20 ms backoffs, so retries happen within a test. */
export const FAST_CATALOG: JobCatalog = Object.fromEntries(
  Object.entries(JOB_CATALOG).map(([stage, e]) => [
    stage,
    { ...e, attempts: 2, backoff: { type: 'fixed', delay: 20 } },
  ]),
) as JobCatalog;

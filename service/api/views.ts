import type { Job, LakeFile, Run } from '../state/entities/index.ts';

// Entities map to API views here, and only here: the response schemas then drop anything not declared.

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

export function runView(run: Run) {
  return {
    id: run.id,
    source: run.source,
    trigger: run.trigger,
    status: run.status,
    plan: run.plan,
    stage: run.stage ?? null,
    attempt: run.attempt,
    params: run.params ?? null,
    counts: {
      fetched: run.fetched ?? null,
      valid: run.valid ?? null,
      rejected: run.rejected ?? null,
      rows: run.rows ?? null,
    },
    error: run.error ?? null,
    cancelledBy: run.cancelledBy ?? null,
    createdAt: run.createdAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    links: { self: `/runs/${run.id}` },
  };
}

export function jobView(job: Job) {
  return {
    id: job.id,
    stage: job.stage,
    runAttempt: job.runAttempt,
    status: job.status,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    externalId: job.externalId ?? null,
    heartbeatAt: iso(job.heartbeatAt),
    params: job.params ?? null,
    metrics: job.metrics ?? null,
    error: job.error ?? null,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
  };
}

export function lakeFileView(file: LakeFile) {
  return {
    uri: file.uri,
    layer: file.layer,
    table: file.table ?? null,
    records: file.records ?? null,
    bytes: file.bytes,
    sha256: file.sha256 ?? null,
    producedBy: { jobId: file.producedBy.id, stage: file.producedBy.stage },
  };
}

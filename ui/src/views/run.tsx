import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ErrorBox, Problem } from '../components/error-box.tsx';
import { FunnelView } from '../components/funnel.tsx';
import { LakeFiles } from '../components/lake-files.tsx';
import { StatusBadge } from '../components/status.tsx';
import { Timeline } from '../components/timeline.tsx';
import { elapsed, formatCount, formatDuration, formatTime } from '../format.ts';
import { useNow, usePolled } from '../poll.ts';
import { formatRoute } from '../route.ts';
import { isActive, type Job, type RunDetail } from '../types.ts';
import { RunActions } from './run-actions.tsx';

const LIVE_MS = 2000;

/** One run: its summary and actions, timeline, funnel, error, jobs, lake files and drift; live while active. */
export function RunView({ id }: { id: number }) {
  const run = usePolled(
    `run|${id}`,
    (signal) => api.run(id, signal),
    (data) => (isActive(data.status) ? LIVE_MS : null),
  );
  const [notice, setNotice] = useState('');
  const data = run.data;
  const now = useNow(data ? isActive(data.status) : false);
  return (
    <>
      <h1>
        Run {id} {data ? <StatusBadge status={data.status} testId="run-status" /> : null}
      </h1>
      <p class="notice" role="status" aria-live="polite">
        {notice}
      </p>
      <Problem error={run.error} />
      {data ? (
        <RunBody
          run={data}
          now={now}
          onAction={(message) => {
            setNotice(message);
            run.reload();
          }}
        />
      ) : run.error ? null : (
        <p aria-busy="true">Loading run {id}…</p>
      )}
    </>
  );
}

function RunBody({ run, now, onAction }: { run: RunDetail; now: number; onAction: (m: string) => void }) {
  const load = [...run.jobs].filter((j) => j.stage === 'load').sort((a, b) => b.id - a.id)[0];
  const schemaChanges = (load?.metrics?.schemaChanges as unknown[] | undefined) ?? [];
  return (
    <>
      <section aria-labelledby="summary-title" class="summary">
        <h2 id="summary-title" class="sr-only">
          Summary
        </h2>
        <dl class="facts">
          <dt>Source</dt>
          <dd>
            <a href={formatRoute({ view: 'source', name: run.source })}>{run.source}</a>
          </dd>
          <dt>Trigger</dt>
          <dd>
            {run.trigger}
            {run.replayOf ? (
              <>
                {' '}
                of <a href={formatRoute({ view: 'run', id: run.replayOf })}>run {run.replayOf}</a>
              </>
            ) : null}
            {run.backfill ? ` (backfill ${run.backfill})` : ''}
          </dd>
          <dt>Stage</dt>
          <dd>
            {run.stage ?? '—'} <span class="muted small">of {run.plan.join(' → ')}</span>
          </dd>
          <dt>Attempt</dt>
          <dd>{run.attempt}</dd>
          <dt>Engine</dt>
          <dd>
            {run.engine ?? '—'}
            {run.engineReason ? <span class="muted small"> ({run.engineReason})</span> : null}
          </dd>
          <dt>Created</dt>
          <dd>{formatTime(run.createdAt)}</dd>
          <dt>Started</dt>
          <dd>{formatTime(run.startedAt)}</dd>
          <dt>Finished</dt>
          <dd>{formatTime(run.finishedAt)}</dd>
          <dt>Duration</dt>
          <dd data-testid="run-duration">{formatDuration(elapsed(run.startedAt, run.finishedAt, now))}</dd>
          {run.queuedBehind?.length ? (
            <>
              <dt>Waiting behind</dt>
              <dd>
                {run.queuedBehind.map((other, i) => (
                  <Fragment key={other}>
                    {i > 0 ? ', ' : ''}
                    <a href={formatRoute({ view: 'run', id: other })}>run {other}</a>
                  </Fragment>
                ))}
              </dd>
            </>
          ) : null}
          {run.cancelledBy ? (
            <>
              <dt>Cancelled by</dt>
              <dd>{run.cancelledBy}</dd>
            </>
          ) : null}
          {run.schemaVersion ? (
            <>
              <dt>Schema version</dt>
              <dd>{run.schemaVersion}</dd>
            </>
          ) : null}
        </dl>
        <RunActions run={run} onDone={onAction} />
      </section>

      {run.error ? <ErrorBox error={run.error} /> : null}

      <section aria-labelledby="timeline-title">
        <h2 id="timeline-title">Timeline</h2>
        <Timeline jobs={run.jobs} now={now} />
      </section>

      <section aria-labelledby="funnel-title">
        <h2 id="funnel-title">Reconciliation</h2>
        <FunnelView run={run} />
        {run.counts.rejected ? (
          <p>
            <a href={formatRoute({ view: 'rejects', id: run.id })}>
              Browse the {formatCount(run.counts.rejected)} rejected records
            </a>
          </p>
        ) : null}
      </section>

      <section aria-labelledby="jobs-title">
        <h2 id="jobs-title">Jobs</h2>
        <Jobs jobs={run.jobs} now={now} />
      </section>

      <section aria-labelledby="files-title">
        <h2 id="files-title">Lake files</h2>
        <LakeFiles files={run.files} jobs={run.jobs} />
      </section>

      {run.drift?.fields.length || schemaChanges.length ? (
        <section aria-labelledby="drift-title">
          <h2 id="drift-title">Drift and schema changes</h2>
          {run.drift?.fields.length ? (
            <div class="scroll">
              <table class="cards" data-testid="drift">
                <caption>
                  Fields no column names, in {formatCount(run.drift.records)} records
                  {run.drift.truncated ? ' (more not listed)' : ''}
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Path</th>
                    <th scope="col">Type</th>
                    <th scope="col" class="num">
                      Records
                    </th>
                    <th scope="col">Sample</th>
                  </tr>
                </thead>
                <tbody>
                  {run.drift.fields.map((f) => (
                    <tr key={`${f.path}|${f.type}`}>
                      <td data-label="Path">
                        <code>{f.path}</code>
                      </td>
                      <td data-label="Type">{f.type}</td>
                      <td class="num" data-label="Records">
                        {formatCount(f.count)}
                      </td>
                      <td data-label="Sample" class="wide">
                        <code class="wrap">{f.sample}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
          {schemaChanges.length ? (
            <>
              <h3>Warehouse changes made by the load</h3>
              <ul>
                {schemaChanges.map((c, i) => (
                  <li key={i}>
                    <code class="wrap">{typeof c === 'string' ? c : JSON.stringify(c)}</code>
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </section>
      ) : null}
    </>
  );
}

function Jobs({ jobs, now }: { jobs: Job[]; now: number }) {
  if (jobs.length === 0) return <p>No jobs yet.</p>;
  return (
    <div class="scroll">
      <table class="cards" data-testid="jobs-table">
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Stage</th>
            <th scope="col">Run attempt</th>
            <th scope="col">Status</th>
            <th scope="col">Tries</th>
            <th scope="col">Engine</th>
            <th scope="col">Step</th>
            <th scope="col">Started</th>
            <th scope="col" class="num">
              Duration
            </th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((job) => (
            <tr key={job.id} data-testid="job-row" data-stage={job.stage}>
              <th scope="row" data-label="Job">
                {job.id}
              </th>
              <td data-label="Stage">{job.stage}</td>
              <td data-label="Run attempt">{job.runAttempt}</td>
              <td data-label="Status">
                <StatusBadge status={job.status} />
              </td>
              <td data-label="Tries">
                {job.attempt} of {job.maxAttempts}
              </td>
              <td data-label="Engine">{job.engine ?? '—'}</td>
              <td data-label="Step">{job.externalId ? <code>{job.externalId}</code> : '—'}</td>
              <td data-label="Started">{formatTime(job.startedAt)}</td>
              <td class="num" data-label="Duration">
                {formatDuration(elapsed(job.startedAt, job.finishedAt, now))}
              </td>
              <td data-label="Error" class="wide">
                {job.error ? (
                  <>
                    <code>{job.error.reason}</code> {job.error.message}
                    {job.error.logs ? (
                      <>
                        {' '}
                        <span class="muted small">(logs: {job.error.logs})</span>
                      </>
                    ) : null}
                  </>
                ) : (
                  '—'
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

import { api } from '../api.ts';
import { Problem } from '../components/error-box.tsx';
import { Pager, useCursorPages } from '../components/pager.tsx';
import { StatusBadge } from '../components/status.tsx';
import { elapsed, formatCount, formatDuration, formatTime } from '../format.ts';
import { useNow, usePolled } from '../poll.ts';
import { formatRoute } from '../route.ts';
import { STATUSES, isActive, type Run, type Status } from '../types.ts';

const LIVE_MS = 2000;
const IDLE_MS = 15_000;

function rowsText(rows: Record<string, number> | null): string {
  if (!rows) return '—';
  const entries = Object.entries(rows);
  return entries.length === 0 ? '0' : entries.map(([t, n]) => `${t} ${formatCount(n)}`).join(', ');
}

/** Runs, newest first, filtered by source and status (in the URL), paged, live while any is active. */
export function RunsView({ source, status }: { source?: string; status?: Status }) {
  const pages = useCursorPages();
  const cursor = pages.cursor;
  // The app keys this view by its filters, so a new filter starts again at the first page.
  const filterKey = `${source ?? ''}|${status ?? ''}`;
  const page = usePolled(
    `runs|${filterKey}|${cursor ?? ''}`,
    (signal) => api.runs({ source, status, cursor }, signal),
    (data) => (data.items.some((r) => isActive(r.status)) ? LIVE_MS : IDLE_MS),
  );
  const sources = usePolled(
    'sources-names',
    (signal) => api.sources(signal),
    () => null,
  );
  const live = page.data?.items.some((r) => isActive(r.status)) ?? false;
  const now = useNow(live);

  const setFilter = (next: { source?: string; status?: Status }) => {
    location.hash = formatRoute({ view: 'runs', ...next });
  };

  return (
    <>
      <h1>Runs</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter runs">
        <label>
          Source
          <select
            name="source"
            value={source ?? ''}
            onChange={(e) => setFilter({ source: e.currentTarget.value || undefined, status })}
          >
            <option value="">All sources</option>
            {(sources.data?.items ?? []).map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
            {source && !sources.data?.items.some((s) => s.name === source) ? (
              <option value={source}>{source}</option>
            ) : null}
          </select>
        </label>
        <label>
          Status
          <select
            name="status"
            value={status ?? ''}
            onChange={(e) =>
              setFilter({ source, status: (e.currentTarget.value || undefined) as Status | undefined })
            }
          >
            <option value="">All statuses</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <span class="live muted small" aria-live="polite">
          {live ? 'Live: updating every 2 s' : ''}
        </span>
      </form>
      <Problem error={page.error} />
      {page.data ? (
        page.data.items.length === 0 ? (
          <p>No runs{source || status ? ' match these filters' : ' yet'}.</p>
        ) : (
          <div class="scroll">
            <table class="cards runs-table" data-testid="runs-table">
              <caption class="sr-only">Runs, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">Status</th>
                  <th scope="col">Source</th>
                  <th scope="col">Trigger</th>
                  <th scope="col">Engine</th>
                  <th scope="col">Started</th>
                  <th scope="col" class="num">
                    Duration
                  </th>
                  <th scope="col" class="num">
                    Fetched
                  </th>
                  <th scope="col" class="num">
                    Valid
                  </th>
                  <th scope="col" class="num">
                    Rejected
                  </th>
                  <th scope="col">Rows</th>
                </tr>
              </thead>
              <tbody>
                {page.data.items.map((run) => (
                  <RunRow key={run.id} run={run} now={now} />
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : page.error ? null : (
        <p aria-busy="true">Loading runs…</p>
      )}
      <Pager
        label="Pages of runs"
        pages={pages}
        nextCursor={page.data?.nextCursor}
        backText="Newer"
        forwardText="Older"
      />
    </>
  );
}

function RunRow({ run, now }: { run: Run; now: number }) {
  return (
    <tr data-testid="run-row" data-run-id={run.id}>
      <th scope="row" data-label="Run" class="nowrap">
        <a href={formatRoute({ view: 'run', id: run.id })}>Run {run.id}</a>
      </th>
      <td data-label="Status">
        <StatusBadge status={run.status} testId="run-status" />
        {run.stage && isActive(run.status) ? <span class="muted small"> {run.stage}</span> : null}
      </td>
      <td data-label="Source">{run.source}</td>
      <td data-label="Trigger">{run.trigger}</td>
      <td data-label="Engine">{run.engine ?? '—'}</td>
      <td data-label="Started" class="nowrap">
        {formatTime(run.startedAt ?? run.createdAt)}
      </td>
      <td class="num nowrap" data-label="Duration">
        {formatDuration(elapsed(run.startedAt, run.finishedAt, now))}
      </td>
      <td class="num" data-label="Fetched">
        {formatCount(run.counts.fetched)}
      </td>
      <td class="num" data-label="Valid">
        {formatCount(run.counts.valid)}
      </td>
      <td class="num" data-label="Rejected">
        {formatCount(run.counts.rejected)}
      </td>
      <td data-label="Rows" class="wide">
        {rowsText(run.counts.rows)}
      </td>
    </tr>
  );
}

import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Problem } from '../components/error-box.tsx';
import { StatusBadge } from '../components/status.tsx';
import { formatCount, formatRelative, formatTime } from '../format.ts';
import { useNow, usePolled } from '../poll.ts';
import { formatRoute } from '../route.ts';
import { isActive, type Backfill, type Source, type SourceSchema } from '../types.ts';

const LIVE_MS = 3000;
const IDLE_MS = 30_000;

const anyActive = (sources: Source[]) => sources.some((s) => s.lastRuns.some((r) => isActive(r.status)));

/** Every source: schedule and next fire time, cursor, last runs, drift; "run now". */
export function SourcesView() {
  const list = usePolled(
    'sources',
    (signal) => api.sources(signal),
    (data) => (anyActive(data.items) ? LIVE_MS : IDLE_MS),
  );
  const now = useNow(true, 5000);
  return (
    <>
      <h1>Sources</h1>
      <Problem error={list.error} />
      {list.data ? (
        <ul class="source-list">
          {list.data.items.map((source) => (
            <li key={source.name}>
              <SourceCard source={source} now={now} heading="h2" />
            </li>
          ))}
        </ul>
      ) : list.error ? null : (
        <p aria-busy="true">Loading sources…</p>
      )}
    </>
  );
}

/** One source, with its backfill form and schema versions. */
export function SourceView({ name }: { name: string }) {
  const source = usePolled(
    `source|${name}`,
    (signal) => api.source(name, signal),
    (data) => (data.lastRuns.some((r) => isActive(r.status)) ? LIVE_MS : IDLE_MS),
  );
  const now = useNow(true, 5000);
  return (
    <>
      <p>
        <a href={formatRoute({ view: 'sources' })}>All sources</a>
      </p>
      <Problem error={source.error} />
      {source.data ? (
        <>
          <SourceCard source={source.data} now={now} heading="h1" />
          <BackfillForm source={source.data} />
          <SchemaVersions name={name} />
        </>
      ) : source.error ? (
        <h1>Source {name}</h1>
      ) : (
        <p aria-busy="true">Loading source {name}…</p>
      )}
    </>
  );
}

function SourceCard({ source, now, heading }: { source: Source; now: number; heading: 'h1' | 'h2' }) {
  const Heading = heading;
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const runNow = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const run = await api.createRun(source.name);
      location.hash = formatRoute({ view: 'run', id: run.id });
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const id = `source-${source.name}`;
  return (
    <article class="card source" aria-labelledby={id} data-testid="source" data-source={source.name}>
      <div class="card-head">
        <Heading id={id}>
          {heading === 'h2' ? (
            <a href={formatRoute({ view: 'source', name: source.name })}>{source.name}</a>
          ) : (
            `Source ${source.name}`
          )}
        </Heading>
        <button type="button" class="primary" disabled={busy} onClick={() => void runNow()}>
          Run {source.name} now
        </button>
      </div>
      <Problem error={error} />
      <dl class="facts">
        <dt>Schedule</dt>
        <dd>
          {source.schedule ? (
            <>
              <code>{source.schedule.cron}</code>
              {source.schedule.timezone ? ` (${source.schedule.timezone})` : ' (UTC)'}
            </>
          ) : (
            'none: runs start by hand or by the API'
          )}
        </dd>
        {source.schedule ? (
          <>
            <dt>Next run</dt>
            <dd>
              {source.nextRunAt ? (
                <>
                  {formatTime(source.nextRunAt)}{' '}
                  <span class="muted small">({formatRelative(source.nextRunAt, now)})</span>
                </>
              ) : (
                'not known (the scheduler did not answer)'
              )}
            </dd>
          </>
        ) : null}
        <dt>Cursor</dt>
        <dd>
          {source.cursor ? <code class="wrap">{source.cursor}</code> : '—'}
          {source.incremental ? (
            <span class="muted small"> (field {source.incremental.cursorField})</span>
          ) : null}
        </dd>
        <dt>Engine</dt>
        <dd>{source.engine}</dd>
        <dt>Tables</dt>
        <dd>{source.tables.join(', ')}</dd>
        <dt>Active runs</dt>
        <dd>
          at most {source.maxActiveRuns}, then {source.onActiveRun}
        </dd>
        <dt>URL</dt>
        <dd>
          <code class="wrap">{source.url}</code>
        </dd>
        <dt>Last runs</dt>
        <dd>
          <RunStrip source={source} />
        </dd>
        <dt>Drift</dt>
        <dd>
          {source.drift ? (
            source.drift.fields.length === 0 ? (
              <>
                none in{' '}
                <a href={formatRoute({ view: 'run', id: source.drift.run })}>run {source.drift.run}</a>
              </>
            ) : (
              <>
                {source.drift.fields.length} field{source.drift.fields.length === 1 ? '' : 's'} no column
                names in{' '}
                <a href={formatRoute({ view: 'run', id: source.drift.run })}>run {source.drift.run}</a>:{' '}
                {source.drift.fields
                  .slice(0, 5)
                  .map((f) => f.path)
                  .join(', ')}
                {source.drift.fields.length > 5 ? ', …' : ''}{' '}
                <span class="muted small">(onDrift: {source.onDrift})</span>
              </>
            )
          ) : (
            'no run has validated yet'
          )}
        </dd>
      </dl>
      <p>
        <a href={formatRoute({ view: 'runs', source: source.name })}>All runs of {source.name}</a>
      </p>
    </article>
  );
}

/** The last runs, oldest first, as status marks that link to each run. */
function RunStrip({ source }: { source: Source }) {
  if (source.lastRuns.length === 0) return <>none yet</>;
  return (
    <ol class="run-strip" aria-label={`Last runs of ${source.name}`} data-testid="run-strip">
      {[...source.lastRuns].reverse().map((run) => (
        <li key={run.id}>
          <a
            href={formatRoute({ view: 'run', id: run.id })}
            class={`mark status-${run.status.toLowerCase()}`}
            aria-label={`Run ${run.id}: ${run.status}`}
            title={`Run ${run.id}: ${run.status}, ${formatTime(run.createdAt)}`}
            data-status={run.status}
          />
        </li>
      ))}
    </ol>
  );
}

function BackfillForm({ source }: { source: Source }) {
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [step, setStep] = useState('P1D');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [backfill, setBackfill] = useState<Backfill>();
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      setBackfill(await api.backfill(source.name, { from, to, step }));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card" aria-labelledby="backfill-title">
      <h2 id="backfill-title">Backfill</h2>
      {source.window ? (
        <p>One run per window, oldest first, within the source's active-run limit.</p>
      ) : (
        <p>
          This source has no window parameters, so the API refuses backfills; it says why below if you try.
        </p>
      )}
      <form class="inline-form" onSubmit={(e) => void submit(e)}>
        <label>
          From (inclusive)
          <input
            name="from"
            value={from}
            placeholder="2025-01-01"
            onInput={(e) => setFrom(e.currentTarget.value)}
          />
        </label>
        <label>
          To (exclusive)
          <input
            name="to"
            value={to}
            placeholder="2025-01-08"
            onInput={(e) => setTo(e.currentTarget.value)}
          />
        </label>
        <label>
          Step
          <input name="step" value={step} placeholder="P1D" onInput={(e) => setStep(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Start backfill
        </button>
      </form>
      <Problem error={error} />
      {backfill ? <BackfillStatus initial={backfill} /> : null}
    </section>
  );
}

function BackfillStatus({ initial }: { initial: Backfill }) {
  const polled = usePolled(
    `backfill|${initial.id}`,
    (signal) => api.getBackfill(initial.id, signal),
    (data) => (isActive(data.status) ? LIVE_MS : null),
  );
  const b = polled.data ?? initial;
  return (
    <div role="status" data-testid="backfill">
      <p>
        Backfill {b.id}: <StatusBadge status={b.status} />, {b.progress.completed} of {b.progress.total} runs
        completed{b.progress.failed ? `, ${b.progress.failed} failed` : ''}.
      </p>
      <ol class="run-strip">
        {b.runs.map((run) => (
          <li key={run.id}>
            <a
              href={formatRoute({ view: 'run', id: run.id })}
              class={`mark status-${run.status.toLowerCase()}`}
              aria-label={`Run ${run.id} (${run.window.from} to ${run.window.to}): ${run.status}`}
              title={`${run.window.from} → ${run.window.to}`}
            />
          </li>
        ))}
      </ol>
    </div>
  );
}

function SchemaVersions({ name }: { name: string }) {
  const schema = usePolled(
    `schema|${name}`,
    (signal) => api.sourceSchema(name, signal),
    () => null,
  );
  return (
    <section class="card" aria-labelledby="schema-title" data-testid="schema-versions">
      <h2 id="schema-title">Schema versions</h2>
      <Problem error={schema.error} />
      {schema.data ? <SchemaBody schema={schema.data} /> : schema.error ? null : <p>Loading…</p>}
    </section>
  );
}

function SchemaBody({ schema }: { schema: SourceSchema }) {
  const { diff } = schema;
  return (
    <>
      {schema.versions.length === 0 ? (
        <p>No load has run yet; the first one records version 1.</p>
      ) : (
        <div class="scroll">
          <table class="cards">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Tables</th>
                <th scope="col">First loaded</th>
                <th scope="col">Last loaded</th>
                <th scope="col" class="num">
                  Runs
                </th>
              </tr>
            </thead>
            <tbody>
              {schema.versions.map((v) => (
                <tr key={v.id}>
                  <th scope="row" data-label="Version">
                    {v.id}
                    {v.current ? <span class="tag">current config</span> : null}
                    {v.id === schema.latestLoadedId ? <span class="tag">latest loaded</span> : null}
                  </th>
                  <td data-label="Tables">{v.tables.join(', ')}</td>
                  <td data-label="First loaded">{formatTime(v.firstLoadedAt)}</td>
                  <td data-label="Last loaded">{formatTime(v.lastLoadedAt)}</td>
                  <td class="num" data-label="Runs">
                    {v.latestRunId ? (
                      <a href={formatRoute({ view: 'run', id: v.latestRunId })}>{formatCount(v.runs)}</a>
                    ) : (
                      formatCount(v.runs)
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h3>
        From {diff.from.label} to {diff.to.label}
      </h3>
      {diff.unchanged ? (
        <p>No change.</p>
      ) : (
        <ul class="diff" data-testid="schema-diff">
          {diff.tablesAdded.map((t) => (
            <li key={`+${t.table}`}>
              Table <code>{t.table}</code> added ({t.columns.map((c) => c.column).join(', ')})
            </li>
          ))}
          {diff.tablesRemoved.map((t) => (
            <li key={`-${t.table}`}>
              Table <code>{t.table}</code> no longer loaded (the warehouse keeps it)
            </li>
          ))}
          {diff.tablesChanged.map((t) => (
            <li key={`~${t.table}`}>
              Table <code>{t.table}</code>:
              <ul>
                {t.columnsAdded.map((c) => (
                  <li key={`+${c.column}`}>
                    column <code>{c.column}</code> added ({c.type})
                  </li>
                ))}
                {t.columnsRemoved.map((c) => (
                  <li key={`-${c.column}`}>
                    column <code>{c.column}</code> removed (kept in the warehouse, NULL in later rows)
                  </li>
                ))}
                {t.typesChanged.map((c) => (
                  <li key={`t${c.column}`}>
                    column <code>{c.column}</code> type {c.from} → {c.to}
                  </li>
                ))}
                {t.pathsChanged.map((c) => (
                  <li key={`p${c.column}`}>
                    column <code>{c.column}</code> path {c.from} → {c.to}
                  </li>
                ))}
                {t.keyChanged ? (
                  <li>
                    key {t.keyChanged.from.key.join(', ')} → {t.keyChanged.to.key.join(', ')}
                  </li>
                ) : null}
              </ul>
            </li>
          ))}
          {diff.cursorColumn ? (
            <li>
              Cursor column {diff.cursorColumn.from ?? 'none'} → {diff.cursorColumn.to ?? 'none'}
            </li>
          ) : null}
        </ul>
      )}
    </>
  );
}

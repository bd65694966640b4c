import { api } from '../api.ts';
import { Problem } from '../components/error-box.tsx';
import { Pager, useCursorPages } from '../components/pager.tsx';
import { formatCount } from '../format.ts';
import { usePolled } from '../poll.ts';
import { formatRoute } from '../route.ts';

/** A run's rejected records, a page at a time, each with its source line and every validation error. */
export function RejectsView({ id }: { id: number }) {
  const pages = useCursorPages();
  const cursor = pages.cursor;
  const page = usePolled(
    `rejects|${id}|${cursor ?? ''}`,
    (signal) => api.rejects(id, cursor, signal),
    () => null,
  );
  const first = pages.depth * 50;
  return (
    <>
      <h1>Rejected records of run {id}</h1>
      <p>
        <a href={formatRoute({ view: 'run', id })}>Back to run {id}</a>
      </p>
      <Problem error={page.error} />
      {page.data ? (
        page.data.items.length === 0 ? (
          <p>Run {id} rejected no records.</p>
        ) : (
          <>
            <p data-testid="rejects-total">
              Records {formatCount(first + 1)}–{formatCount(first + page.data.items.length)} of{' '}
              {formatCount(page.data.total)} rejected.
            </p>
            <ol class="rejects" start={first + 1} data-testid="rejects">
              {page.data.items.map((item) => (
                <li key={`${item.source.file}:${item.source.line}`} class="card" data-testid="reject">
                  <p class="small">
                    <code class="wrap">
                      {item.source.file}:{item.source.line}
                    </code>
                  </p>
                  <ul class="reasons">
                    {item.errors.map((e, i) => (
                      <li key={i}>
                        <code>{e.path || '/'}</code> {e.message}
                      </li>
                    ))}
                  </ul>
                  <details>
                    <summary>Record</summary>
                    <pre>{JSON.stringify(item.record, null, 2)}</pre>
                  </details>
                </li>
              ))}
            </ol>
          </>
        )
      ) : page.error ? null : (
        <p aria-busy="true">Loading rejected records…</p>
      )}
      <Pager
        label="Pages of rejected records"
        pages={pages}
        nextCursor={page.data?.nextCursor}
        backText="Previous"
        forwardText="Next"
      />
    </>
  );
}

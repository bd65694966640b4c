import { formatCount } from '../format.ts';
import { runFunnel } from '../funnel.ts';
import type { RunDetail } from '../types.ts';

function Check({ ok, what }: { ok: boolean | null; what: string }) {
  if (ok === null) return <span class="check muted">not known yet</span>;
  return ok ? (
    <span class="check ok">✓ {what}</span>
  ) : (
    <span class="check bad" role="status">
      ✗ {what} does not hold
    </span>
  );
}

function Bar({ value, of }: { value: number | null; of: number | null }) {
  const width = value === null || !of ? 0 : Math.min(100, (value / of) * 100);
  return (
    <span class="funnel-bar" aria-hidden="true">
      <span style={{ width: `${width}%` }} />
    </span>
  );
}

/** The run's counts as a funnel, each step with whether it reconciles with the one before. */
export function FunnelView({ run }: { run: RunDetail }) {
  const f = runFunnel(run);
  const top = f.fetched;
  return (
    <div class="funnel" data-testid="funnel">
      <table>
        <caption class="sr-only">Reconciliation of the run's counts</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col" class="num">
              Records
            </th>
            <th scope="col" class="bar-col">
              <span class="sr-only">Share</span>
            </th>
            <th scope="col">Check</th>
          </tr>
        </thead>
        <tbody>
          <tr data-testid="funnel-fetched">
            <th scope="row">Fetched</th>
            <td class="num">{formatCount(f.fetched)}</td>
            <td class="bar-col">
              <Bar value={f.fetched} of={top} />
            </td>
            <td />
          </tr>
          <tr data-testid="funnel-valid">
            <th scope="row">Valid</th>
            <td class="num">{formatCount(f.valid)}</td>
            <td class="bar-col">
              <Bar value={f.valid} of={top} />
            </td>
            <td rowSpan={2}>
              <Check ok={f.validBalanced} what="fetched = valid + rejected" />
            </td>
          </tr>
          <tr data-testid="funnel-rejected">
            <th scope="row">Rejected</th>
            <td class="num">{formatCount(f.rejected)}</td>
            <td class="bar-col">
              <Bar value={f.rejected} of={top} />
            </td>
          </tr>
          <tr data-testid="funnel-parent">
            <th scope="row">
              Parent rows{f.tables.find((t) => t.parent) ? ` (${f.tables.find((t) => t.parent)?.table})` : ''}
            </th>
            <td class="num">{formatCount(f.parentRows)}</td>
            <td class="bar-col">
              <Bar value={f.parentRows} of={top} />
            </td>
            <td rowSpan={2}>
              <Check ok={f.parentBalanced} what="valid = parent rows + duplicates" />
            </td>
          </tr>
          <tr data-testid="funnel-duplicates">
            <th scope="row">Duplicates</th>
            <td class="num">{formatCount(f.duplicates)}</td>
            <td class="bar-col">
              <Bar value={f.duplicates} of={top} />
            </td>
          </tr>
        </tbody>
      </table>
      {f.tables.length > 0 ? (
        <table class="funnel-tables">
          <caption>Per table: curated rows = loaded + stale</caption>
          <thead>
            <tr>
              <th scope="col">Table</th>
              <th scope="col" class="num">
                Curated
              </th>
              <th scope="col" class="num">
                Loaded
              </th>
              <th scope="col" class="num">
                Stale
              </th>
              <th scope="col">Check</th>
            </tr>
          </thead>
          <tbody>
            {f.tables.map((t) => (
              <tr key={t.table} data-testid="funnel-table" data-table={t.table}>
                <th scope="row" data-label="Table">
                  {t.table}
                </th>
                <td class="num" data-label="Curated">
                  {formatCount(t.curated)}
                </td>
                <td class="num" data-label="Loaded">
                  {formatCount(t.loaded)}
                </td>
                <td class="num" data-label="Stale">
                  {formatCount(t.stale)}
                </td>
                <td data-label="Check" class="wide">
                  <Check ok={t.balanced} what="curated = loaded + stale" />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

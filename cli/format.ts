import { tableCounts, type StageView } from './stages.ts';
import type {
  Backfill,
  Counts,
  Drift,
  ErrorInfo,
  Run,
  RunDetail,
  RunPage,
  SchemaColumn,
  SourceSchema,
  TableKey,
} from './types.ts';

// Text for people: tables, one-line summaries and the stage lines. Nothing here writes or talks to the API.

export const count = (n: number): string => n.toLocaleString('en-US');

/** `0.8s`, `12s`, `3m04s`, `1h02m`. */
export function duration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The time from `start` to `end` (or to `now` while it runs); empty before it starts. */
export function span(start: number | string | null, end: number | string | null, now: number): string {
  const from = typeof start === 'string' ? Date.parse(start) : start;
  const to = typeof end === 'string' ? Date.parse(end) : end;
  return from === null ? '' : duration((to ?? now) - from);
}

/** `2026-05-01 10:00:03Z`. */
export const timestamp = (iso: string | null): string =>
  iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';

/** Columns padded to their widest cell; numbers (cells of digits and commas) are right-aligned. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => /^[\d,]*$/.test(r[i] ?? '')));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

const sum = (rows: Record<string, number> | null): number | null =>
  rows ? Object.values(rows).reduce((a, b) => a + b, 0) : null;
const opt = (n: number | null): string => (n === null ? '' : count(n));

export function runsTable(page: RunPage, now: number): string[] {
  if (page.items.length === 0) return ['no runs'];
  return table(
    [
      'ID',
      'SOURCE',
      'STATUS',
      'STAGE',
      'TRIGGER',
      'ATTEMPT',
      'FETCHED',
      'VALID',
      'REJECTED',
      'ROWS',
      'CREATED',
      'TOOK',
    ],
    page.items.map((r) => [
      String(r.id),
      r.source,
      r.status,
      r.stage ?? '',
      r.trigger,
      String(r.attempt),
      opt(r.counts.fetched),
      opt(r.counts.valid),
      opt(r.counts.rejected),
      opt(sum(r.counts.rows)),
      timestamp(r.createdAt),
      span(r.startedAt, r.finishedAt, now),
    ]),
  );
}

/** `250 fetched, 248 valid, 2 rejected; rows orders 248, order_items 612`, or '' before anything counted. */
export function countsLine(counts: Counts): string {
  const records = [
    counts.fetched === null ? '' : `${count(counts.fetched)} fetched`,
    counts.valid === null ? '' : `${count(counts.valid)} valid`,
    counts.rejected === null ? '' : `${count(counts.rejected)} rejected`,
  ].filter(Boolean);
  const rows = counts.rows && Object.keys(counts.rows).length > 0 ? `rows ${tableCounts(counts.rows)}` : '';
  return [records.join(', '), rows].filter(Boolean).join('; ');
}

export const STATE_LABEL: Record<StageView['state'], string> = {
  waiting: 'waiting',
  running: 'running',
  retrying: 'retrying',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
  skipped: 'not run',
};

/** Right of a stage's bar: `done        0.4s  250 fetched`: its state, its time, its records. */
export function stageTail(view: StageView, now: number): string {
  const extra = [
    view.engine ? `on ${view.engine}` : '',
    view.records,
    view.attempt > 1 ? `attempt ${view.attempt} of ${view.maxAttempts}` : '',
    (view.state === 'failed' || view.state === 'retrying') && view.error ? view.error.reason : '',
  ].filter(Boolean);
  const elapsed = span(view.startedAt, view.finishedAt, now);
  return `${STATE_LABEL[view.state].padEnd(9)} ${elapsed.padStart(6)}  ${extra.join(' · ')}`.trimEnd();
}

/** Left of a stage's bar. */
export const stageLabel = (view: StageView): string => `  ${view.stage.padEnd(9)}`;

/** `transform_failed at stage transform (attempt 1): the transform fails on purpose`. */
export function errorText(error: ErrorInfo): string {
  const where = error.stage
    ? ` at stage ${error.stage}${error.attempt === undefined ? '' : ` (attempt ${error.attempt})`}`
    : '';
  const http =
    error.httpStatus === undefined ? '' : ` [HTTP ${error.httpStatus}${error.url ? ` ${error.url}` : ''}]`;
  return `${error.reason}${where}: ${error.message}${http}`;
}

/** `run 12 (demo, manual, attempt 1): RUNNING at validate`; a replay or a backfill's run says of what. */
export function runHeadline(run: Run): string {
  const at = run.stage && !['COMPLETED', 'CANCELLED'].includes(run.status) ? ` at ${run.stage}` : '';
  const trigger = run.replayOf
    ? `replay of run ${run.replayOf}`
    : run.backfill
      ? `backfill ${run.backfill}`
      : run.trigger;
  return `run ${run.id} (${run.source}, ${trigger}, attempt ${run.attempt}): ${run.status}${at}`;
}

/** Why a run is not moving: the runs it waits behind under its source's maxActiveRuns. */
export function queuedLine(run: Run): string {
  const behind = run.queuedBehind ?? [];
  return behind.length === 0
    ? ''
    : `run ${run.id} is queued behind run${behind.length > 1 ? 's' : ''} ${behind.join(', ')} ` +
        `(source ${run.source} is at its maxActiveRuns); it starts when a slot frees up`;
}

/** The end of a run as one or two lines: what it did, or why it did not finish. */
export function outcomeLines(run: Run, cli: string): string[] {
  const took = run.startedAt && run.finishedAt ? ` in ${span(run.startedAt, run.finishedAt, 0)}` : '';
  const counts = countsLine(run.counts);
  switch (run.status) {
    case 'COMPLETED':
      return [`run ${run.id} COMPLETED${took}${counts ? `: ${counts}` : ''}`];
    case 'FAILED':
      return [
        `run ${run.id} FAILED${run.error ? `: ${errorText(run.error)}` : ''}`,
        ...(run.error?.logs ? [`  logs: ${run.error.logs}`] : []),
        `  retry it from the failed stage: ${cli} retry ${run.id}`,
        ...(run.error?.reason === 'key_changed'
          ? [`  once the warehouse table is rebuilt: ${cli} retry ${run.id} --accept-key-change`]
          : []),
      ];
    case 'CANCELLED':
      // A plain cancel's error only repeats who cancelled; another (a deadline, say) says why.
      return [
        `run ${run.id} CANCELLED${run.cancelledBy ? ` by ${run.cancelledBy}` : ''}` +
          `${run.error && run.error.reason !== 'cancelled' ? `: ${errorText(run.error)}` : ''}`,
      ];
    case 'PENDING':
    case 'RUNNING':
      return [runHeadline(run)];
  }
}

/** `show`: the run, its stages (already rendered), its attempt history when there is one, and its files. */
export function runDetailLines(run: RunDetail, stageLines: string[], now: number): string[] {
  const params = run.params && Object.keys(run.params).length > 0 ? JSON.stringify(run.params) : '';
  const counts = countsLine(run.counts);
  const lines = [
    runHeadline(run),
    `  created ${timestamp(run.createdAt)} · started ${timestamp(run.startedAt)} · finished ${timestamp(run.finishedAt)}` +
      (run.startedAt ? ` · took ${span(run.startedAt, run.finishedAt, now)}` : ''),
    ...(params ? [`  params   ${params}`] : []),
    ...(counts ? [`  counts   ${counts}`] : []),
    ...(run.engine ? [`  engine   ${run.engine}${run.engineReason ? ` (${run.engineReason})` : ''}`] : []),
    ...(queuedLine(run) ? [`  ${queuedLine(run)}`] : []),
    ...(run.cancelledBy ? [`  cancelled by ${run.cancelledBy}`] : []),
    ...(run.error ? [`  error    ${errorText(run.error)}`] : []),
    ...(run.error?.logs ? [`  logs     ${run.error.logs}`] : []),
    ...(run.drift ? driftLines(run.drift) : []),
    'stages',
    ...stageLines,
  ];
  const retried = run.attempt > 1 || run.jobs.some((j) => j.attempt > 1);
  if (retried) {
    lines.push('jobs');
    lines.push(
      ...table(
        ['  JOB', 'STAGE', 'RUN ATTEMPT', 'STATUS', 'ENGINE', 'TRIES', 'TOOK', 'ERROR'],
        run.jobs.map((j) => [
          `  ${j.id}`,
          j.stage,
          String(j.runAttempt),
          j.status,
          j.engine ?? '',
          `${j.attempt}/${j.maxAttempts}`,
          span(j.startedAt, j.finishedAt, now),
          j.error ? `${j.error.reason}: ${j.error.message}` : '',
        ]),
      ),
    );
  }
  if (run.files.length > 0) {
    const layers = new Map<string, { files: number; records: number }>();
    for (const f of run.files) {
      const l = layers.get(f.layer) ?? { files: 0, records: 0 };
      l.files += 1;
      l.records += f.records ?? 0;
      layers.set(f.layer, l);
    }
    lines.push(
      `files    ${[...layers]
        .map(([layer, l]) => `${layer} ${l.files} (${count(l.records)} records)`)
        .join(', ')}`,
    );
  }
  return lines;
}

/** `  drift    new field `discount` (number) in 1,234 of 5,000 records, e.g. 0.1`, one line a field. */
export function driftLines(drift: Drift): string[] {
  const lines = drift.fields.map(
    (f, i) =>
      `  ${i === 0 ? 'drift' : '     '}    new field \`${f.path}\` (${f.type}) in ${count(f.count)} of ` +
      `${count(drift.records)} records, e.g. ${f.sample}`,
  );
  if (drift.truncated) lines.push('           and more, not listed: over 200 kinds of new field were seen');
  return lines;
}

/** `3/10 windows finished · 2 running · 1 failed · 750 fetched · 12s`. */
export function backfillText(b: Backfill, now: number): string {
  const p = b.progress;
  const done = p.completed + p.failed + p.cancelled;
  const parts = [
    `${done}/${p.total} windows finished`,
    p.running ? `${p.running} running` : '',
    p.pending ? `${p.pending} pending` : '',
    p.failed ? `${p.failed} failed` : '',
    p.cancelled ? `${p.cancelled} cancelled` : '',
    b.counts.fetched === null ? '' : `${count(b.counts.fetched)} fetched`,
    span(b.createdAt, b.finishedAt, now),
  ];
  return parts.filter(Boolean).join(' · ');
}

/** `backfill 5 of demo: 2026-01-01 → 2026-01-11 by P1D (10 windows): RUNNING`. */
export function backfillHeadline(b: Backfill): string {
  return `backfill ${b.id} of ${b.source}: ${b.from} → ${b.to} by ${b.step} (${b.progress.total} windows): ${b.status}`;
}

/** The end of a backfill: its counts, and each window that did not complete with its run. */
export function backfillOutcomeLines(b: Backfill, cli: string): string[] {
  const counts = countsLine(b.counts);
  const lines = [
    `backfill ${b.id} ${b.status}: ${b.progress.completed} of ${b.progress.total} windows completed` +
      (counts ? `; ${counts}` : ''),
  ];
  const bad = b.runs.filter((r) => r.status === 'FAILED' || r.status === 'CANCELLED');
  for (const r of bad) lines.push(`  window ${r.window.from} → ${r.window.to}: run ${r.id} ${r.status}`);
  const failed = bad.find((r) => r.status === 'FAILED');
  if (failed)
    lines.push(`  see why with: ${cli} show ${failed.id} · retry a window with: ${cli} retry ${failed.id}`);
  return lines;
}

export function backfillDetailLines(b: Backfill, now: number): string[] {
  const counts = countsLine(b.counts);
  return [
    backfillHeadline(b),
    `  created ${timestamp(b.createdAt)}${b.createdBy ? ` by ${b.createdBy}` : ''} · finished ${timestamp(b.finishedAt)}`,
    `  ${backfillText(b, now)}`,
    ...(counts ? [`  counts   ${counts}`] : []),
    ...(b.runs.length > 0
      ? [
          'windows',
          ...table(
            ['  FROM', 'TO', 'RUN', 'STATUS', 'STAGE'],
            b.runs.map((r) => [`  ${r.window.from}`, r.window.to, String(r.id), r.status, r.stage ?? '']),
          ),
        ]
      : []),
  ];
}

/** `key [order_id, line], parentKey {order_id: id}, from items`. */
function keyText(key: TableKey): string {
  const parts = [`key [${key.key.join(', ')}]`];
  if (key.parentKey)
    parts.push(
      `parentKey {${Object.entries(key.parentKey)
        .map(([child, parent]) => `${child}: ${parent}`)
        .join(', ')}}`,
    );
  if (key.from !== null) parts.push(`from ${key.from}`);
  return parts.join(', ');
}

const columnText = (c: SchemaColumn): string => `${c.column} ${c.type}`;

/** The parts of a key that changed: `key [order_id, line] → [order_id, sku]`, `from items → lines`. */
function keyChangeText(a: TableKey, b: TableKey): string {
  const parentKey = (k: TableKey): string =>
    `{${Object.entries(k.parentKey ?? {})
      .map(([child, parent]) => `${child}: ${parent}`)
      .join(', ')}}`;
  const parts: string[] = [];
  if (a.key.join(',') !== b.key.join(',')) parts.push(`key [${a.key.join(', ')}] → [${b.key.join(', ')}]`);
  if (parentKey(a) !== parentKey(b)) parts.push(`parentKey ${parentKey(a)} → ${parentKey(b)}`);
  if (a.from !== b.from) parts.push(`from ${a.from ?? 'none'} → ${b.from ?? 'none'}`);
  return parts.join(', ');
}

/**
 * `schema`: the source's versions as a table, which one the config is and which one the warehouse follows, then
 * the diff a line per change: `+` added, `-` removed (the warehouse keeps it), `~` changed, `!` a key change.
 */
export function sourceSchemaLines(s: SourceSchema, cli: string): string[] {
  const lines = [`schema versions of ${s.source}`];
  if (s.versions.length === 0) lines.push('  none yet: the first load of the source records one');
  else
    lines.push(
      ...table(
        ['  ID', 'HASH', 'CREATED', 'FIRST LOADED', 'LAST LOADED', 'RUNS', 'LATEST RUN', ''],
        s.versions.map((v) => [
          `  ${v.id}`,
          v.hash.slice(0, 12),
          timestamp(v.createdAt),
          timestamp(v.firstLoadedAt),
          timestamp(v.lastLoadedAt),
          count(v.runs),
          v.latestRunId === null ? '-' : String(v.latestRunId),
          [v.current ? 'current config' : '', v.id === s.latestLoadedId ? 'latest loaded' : '']
            .filter(Boolean)
            .join(', '),
        ]),
      ),
    );
  lines.push(
    s.current.versionId === null
      ? `the current config (${s.current.hash.slice(0, 12)}) has no version yet: its first load records one`
      : `the current config is version ${s.current.versionId}`,
  );

  const d = s.diff;
  const between = `from ${d.from.label} to ${d.to.label}`;
  if (d.unchanged) {
    lines.push('', `no changes ${between}`);
    return lines;
  }
  lines.push('', `changes ${between}:`);
  for (const t of d.tablesAdded)
    lines.push(`+ table ${t.table} (${keyText(t.key)}): ${t.columns.map(columnText).join(', ')}`);
  for (const t of d.tablesRemoved) lines.push(`- table ${t.table} (kept in the warehouse)`);
  let keyChanged = false;
  for (const t of d.tablesChanged) {
    for (const c of t.columnsAdded) lines.push(`+ ${t.table}.${columnText(c)}`);
    for (const c of t.typesChanged) lines.push(`~ ${t.table}.${c.column} ${c.from} → ${c.to}`);
    for (const c of t.pathsChanged) lines.push(`~ ${t.table}.${c.column} read from ${c.from} → ${c.to}`);
    for (const c of t.columnsRemoved) lines.push(`- ${t.table}.${columnText(c)} (kept in the warehouse)`);
    if (t.keyChanged) {
      keyChanged = true;
      lines.push(`! ${t.table} ${keyChangeText(t.keyChanged.from, t.keyChanged.to)}`);
    }
  }
  if (d.cursorColumn)
    lines.push(`~ cursor column ${d.cursorColumn.from ?? 'none'} → ${d.cursorColumn.to ?? 'none'}`);
  if (keyChanged)
    lines.push(
      '',
      'a load refuses a key change: load into a new table name, or drop or rename the warehouse table and retry ' +
        `the refused run with ${cli} retry <id> --accept-key-change`,
    );
  return lines;
}

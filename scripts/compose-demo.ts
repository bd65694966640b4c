// The `demo` service of docker-compose.yml: once afluente is up, triggers a run of a source through the API,
// follows it stage by stage, and prints what it fetched and the rows it loaded into the warehouse. The exit
// code is 0 only when the run COMPLETED. It needs nothing but Node (no npm package), and talks only to the API.
//
//   node scripts/compose-demo.ts [--url http://127.0.0.1:8080] [--source demo] [--public-url URL] [--timeout-s 900]
//
// The token is the first entry of AFLUENTE_API_TOKENS (`label=token,…`, the service's own setting), so it never
// shows on a command line. `--public-url` is how the printed hints reach the API from the host.
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
const POLL_MS = 1000;
const READY_TIMEOUT_MS = 180_000;

interface JobView {
  stage: string;
  status: string;
  attempt: number;
  metrics: Record<string, unknown> | null;
  error: { message: string } | null;
}
interface RunView {
  id: number;
  status: string;
  stage: string | null;
  error: { message: string; stage?: string } | null;
  counts: {
    fetched: number | null;
    valid: number | null;
    rejected: number | null;
    rows: Record<string, number> | null;
  };
  jobs?: JobView[];
}

class Failure extends Error {}

/** The token of the first `label=token` (or bare `token`) entry, parsed as the service parses it. */
function firstToken(tokens: string | undefined): string {
  const entry = (tokens ?? '')
    .split(',')
    .map((e) => e.trim())
    .find((e) => e.length > 0);
  if (!entry) throw new Failure('AFLUENTE_API_TOKENS is not set: give this script the service’s tokens');
  const eq = entry.indexOf('=');
  return eq > 0 ? entry.slice(eq + 1) : entry;
}

function positive(name: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) === 0) throw new Failure(`--${name} must be a positive integer`);
  return Number(raw);
}

/** One line per job state: its status and the numbers its metrics hold. */
function describeJob(job: JobView): string {
  const m = job.metrics ?? {};
  const facts = ['fetched', 'valid', 'rejected', 'pages', 'files', 'duplicates']
    .filter((k) => typeof m[k] === 'number')
    .map((k) => `${k} ${String(m[k])}`);
  const tables = m.tables ?? m.rows;
  if (tables && typeof tables === 'object')
    facts.push(
      Object.entries(tables as Record<string, unknown>)
        .map(([t, n]) => `${t} ${String(n)}`)
        .join(', '),
    );
  const attempt = job.attempt > 1 ? ` (attempt ${job.attempt})` : '';
  const error = job.error ? ` (${job.error.message})` : '';
  return `${job.status}${attempt}${facts.length ? `: ${facts.join(', ')}` : ''}${error}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:8080' },
      'public-url': { type: 'string' },
      source: { type: 'string', default: 'demo' },
      'timeout-s': { type: 'string', default: '900' },
    },
    strict: true,
  });
  const base = values.url.replace(/\/+$/, '');
  const shown = (values['public-url'] ?? base).replace(/\/+$/, '');
  const source = values.source;
  const deadline = Date.now() + positive('timeout-s', values['timeout-s']) * 1000;
  const headers = {
    authorization: `Bearer ${firstToken(process.env.AFLUENTE_API_TOKENS)}`,
    'content-type': 'application/json',
  };

  async function api<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await fetch(`${base}${path}`, { ...init, headers, signal: AbortSignal.timeout(30_000) });
    const body = (await res.json().catch(() => ({}))) as T & { message?: string };
    if (!res.ok)
      throw new Failure(`${init?.method ?? 'GET'} ${path} answered ${res.status}: ${body.message ?? ''}`);
    return body;
  }

  // docker compose starts this once afluente is healthy; waiting here too makes the script usable on its own.
  const readyBy = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const res = await fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(5000) }).catch(
      () => undefined,
    );
    if (res?.status === 200) break;
    if (Date.now() > readyBy)
      throw new Failure(`afluente at ${base} was not ready within ${READY_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_MS);
  }

  const started = Date.now();
  const created = await api<RunView>('/runs', { method: 'POST', body: JSON.stringify({ source }) });
  console.log(`▶ run ${created.id} of source "${source}" created: ${shown}/runs/${created.id}`);

  const seen = new Map<string, string>();
  let run: RunView;
  for (;;) {
    run = await api<RunView>(`/runs/${created.id}`);
    for (const job of run.jobs ?? []) {
      const line = describeJob(job);
      if (seen.get(job.stage) !== line) console.log(`  ${job.stage.padEnd(10)} ${line}`);
      seen.set(job.stage, line);
    }
    if (TERMINAL.has(run.status)) break;
    if (Date.now() > deadline) {
      throw new Failure(
        `run ${run.id} is still ${run.status} (stage ${run.stage ?? '?'}) after ${values['timeout-s']} s; ` +
          `it goes on in afluente: ${shown}/runs/${run.id}`,
      );
    }
    await sleep(POLL_MS);
  }

  const seconds = Math.round((Date.now() - started) / 1000);
  const { fetched, valid, rejected, rows } = run.counts;
  console.log(`\n▶ run ${run.id} ${run.status} in ${seconds} s`);
  console.log(
    `  records: fetched ${String(fetched ?? 0)}, valid ${String(valid ?? 0)}, rejected ${String(rejected ?? 0)}`,
  );
  if (run.status !== 'COMPLETED') {
    console.log(
      `  stage ${run.error?.stage ?? run.stage ?? '?'}: ${run.error?.message ?? 'no error recorded'}`,
    );
    return 1;
  }
  const loaded = Object.entries(rows ?? {});
  console.log('  rows loaded into the warehouse:');
  for (const [table, n] of loaded) console.log(`    ${table.padEnd(12)} ${n}`);
  if (loaded.length === 0) console.log('    none (no new records since the last run)');
  console.log(
    `\n▶ the run in the API: curl -H "Authorization: Bearer <token>" ${shown}/runs/${run.id}\n` +
      `  the tables in PostgreSQL: docker compose exec postgres psql -U postgres afluente -c 'SELECT count(*) FROM orders'`,
  );
  return 0;
}

// As a container's PID 1 node would ignore SIGTERM (no handler), and `docker compose down` would wait on it.
process.once('SIGTERM', () => process.exit(143));
process.once('SIGINT', () => process.exit(130));

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`compose demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}

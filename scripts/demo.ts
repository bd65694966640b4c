// `npm run demo`: starts afluente on this machine, triggers a run of the `demo` source, follows it stage by
// stage, and reports exactly what happened. The exit code is 0 only when the run COMPLETED.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { startDemoApi, type DemoApi } from '../demo/source-api/server.ts';

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
// The service's default warehouse (AFLUENTE_WAREHOUSE_URL): PostgreSQL standing in for Redshift.
const WAREHOUSE_URL = process.env.AFLUENTE_WAREHOUSE_URL ?? 'postgres://postgres@127.0.0.1:5432/afluente';

interface JobView {
  stage: string;
  status: string;
  attempt: number;
  error: { message: string } | null;
  metrics: Record<string, unknown> | null;
  /** transform and load: the engine that ran the step, and why. */
  engine: string | null;
  engineReason: string | null;
}
interface RunView {
  id: number;
  status: string;
  createdAt: string;
  finishedAt: string | null;
  stage: string | null;
  error: { message: string; stage?: string } | null;
  counts: Record<string, unknown>;
  jobs: JobView[];
}

function freePort(preferred: number): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => server.listen(0, '127.0.0.1'));
    server.listen(preferred, '127.0.0.1');
    server.once('listening', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const services = spawnSync('bash', ['scripts/ensure-services.sh'], { stdio: 'inherit' });
if (services.status !== 0) process.exit(1);

// The demo source (config/sources.yaml) reads this local API.
const DEMO_API_PORT = 8787;
const DEMO_RECORDS = 10_000;
let demoApi: DemoApi;
try {
  demoApi = await startDemoApi({ port: DEMO_API_PORT, records: DEMO_RECORDS, pageSize: 1000 });
} catch (error) {
  console.error(
    `demo failed: could not start the demo source API on 127.0.0.1:${DEMO_API_PORT}: ${(error as Error).message}`,
  );
  process.exit(1);
}
console.log(`▶ demo source API on ${demoApi.url} serving ${DEMO_RECORDS} orders`);

const port = await freePort(8080);
const token = `demo-${randomBytes(16).toString('hex')}`;
const base = `http://127.0.0.1:${port}`;
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

console.log(`▶ starting afluente on ${base} (state in mysql://root@127.0.0.1:3306/afluente)`);
const service = spawn(process.execPath, ['service/main.ts'], {
  env: {
    ...process.env,
    AFLUENTE_PORT: String(port),
    AFLUENTE_API_TOKENS: `demo=${token}`,
    AFLUENTE_LOG_LEVEL: 'fatal',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const exited = once(service, 'exit');

async function stopService(): Promise<void> {
  if (service.exitCode === null) service.kill('SIGTERM');
  await exited;
  await demoApi.close();
}

async function api<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${base}${path}`, { ...init, headers });
  const body = (await res.json()) as T & { message?: string };
  if (!res.ok)
    throw new Error(`${init?.method ?? 'GET'} ${path} answered ${res.status}: ${body.message ?? ''}`);
  return body;
}

let exitCode = 1;
try {
  for (let i = 0; ; i++) {
    if (service.exitCode !== null)
      throw new Error('the service exited during start-up (see its output above)');
    const ready = await fetch(`${base}/health/ready`).catch(() => undefined);
    if (ready?.status === 200) break;
    if (i > 120) throw new Error('the service did not become ready within 60 s');
    await sleep(500);
  }
  const created = await api<RunView>('/runs', { method: 'POST', body: JSON.stringify({ source: 'demo' }) });
  console.log(`▶ run ${created.id} created for source "demo": ${base}/runs/${created.id}`);

  const seen = new Map<string, string>();
  let run: RunView;
  for (;;) {
    run = await api<RunView>(`/runs/${created.id}`);
    for (const job of run.jobs) {
      const m = job.metrics ?? {};
      const facts = ['fetched', 'valid', 'rejected', 'pages', 'files', 'duplicates']
        .filter((k) => typeof m[k] === 'number')
        .map((k) => `${k} ${String(m[k])}`);
      const tables = (m.tables ?? m.rows) as Record<string, number> | undefined;
      if (tables && typeof tables === 'object')
        facts.push(
          Object.entries(tables)
            .map(([t, n]) => `${t} ${n}`)
            .join(', '),
        );
      const engine = job.engine ? ` on ${job.engine} (${job.engineReason ?? 'no reason recorded'})` : '';
      const line = `${job.status}${engine}${job.attempt > 1 ? ` (attempt ${job.attempt})` : ''}${facts.length ? `: ${facts.join(', ')}` : ''}`;
      if (seen.get(job.stage) !== line) console.log(`  ${job.stage.padEnd(10)} ${line}`);
      seen.set(job.stage, line);
    }
    if (TERMINAL.has(run.status)) break;
    await sleep(500);
  }

  const took = run.finishedAt
    ? ` in ${((Date.parse(run.finishedAt) - Date.parse(run.createdAt)) / 1000).toFixed(1)} s`
    : '';
  console.log(`\n▶ run ${run.id} ${run.status}${took}`);
  console.log(
    `  records fetched: ${String((run.counts.fetched as number | null) ?? 0)} (the demo API served ${demoApi.stats().requests} requests)`,
  );
  if (run.status === 'COMPLETED') {
    console.log(`  counts: ${JSON.stringify(run.counts)}`);
    console.log(`\n▶ in PostgreSQL (${WAREHOUSE_URL}, schema public):`);
    const db = new pg.Client({ connectionString: WAREHOUSE_URL });
    await db.connect();
    try {
      for (const table of ['orders', 'order_items', 'order_tags']) {
        const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM public.${table}`);
        console.log(`  ${table.padEnd(12)} ${rows[0]?.n ?? '?'} rows`);
      }
    } finally {
      await db.end();
    }
    console.log(
      `  query them with:\n` +
        `    psql ${WAREHOUSE_URL} -c 'SELECT o.id, o.status, o.total, count(i.*) AS items FROM orders o ` +
        `JOIN order_items i ON i.order_id = o.id GROUP BY 1, 2, 3 ORDER BY o.id LIMIT 10'`,
    );
    exitCode = 0;
  } else {
    console.log(
      `  stage ${run.error?.stage ?? run.stage ?? '?'}: ${run.error?.message ?? 'no error recorded'}`,
    );
  }
  console.log(
    `\n▶ the run in the API: ${base}/runs/${run.id}, in the web app: ${base}/ui/#/runs/${run.id}\n` +
      `  the run stays in MySQL; to inspect it after this demo, start the service with a token of your own:\n` +
      `    AFLUENTE_API_TOKENS=me=$(openssl rand -hex 24) npm start\n` +
      `    curl -H "Authorization: Bearer <that token>" http://127.0.0.1:8080/runs/${run.id}\n` +
      `  or open http://127.0.0.1:8080/ui/#/runs/${run.id} and sign in with that token`,
  );
} catch (error) {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await stopService();
}
process.exit(exitCode);

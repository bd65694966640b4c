// CLI for the demo source API:
//   node demo/source-api/main.ts [--host 127.0.0.1] --port 8787 --records 10000 --page-size 1000 [--seed 1] [--token T]
//     [--max-page-size 5000] [--base-time 2026-01-01T00:00:00Z] [--faults '{"rateLimit":{...}}']
import { parseArgs } from 'node:util';
import { validateFaultSpec, type FaultSpec } from './faults.ts';
import { startDemoApi } from './server.ts';

function int(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`--${name} must be a non-negative integer (got "${raw}")`);
  return Number(raw);
}

function parseFaults(raw: string): FaultSpec {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error(`--faults is not JSON: ${raw}`);
  }
  return validateFaultSpec(json);
}

try {
  const { values } = parseArgs({
    options: {
      // 0.0.0.0 when other hosts must reach it (docker compose); loopback only by default.
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8787' },
      records: { type: 'string' },
      'page-size': { type: 'string' },
      'max-page-size': { type: 'string' },
      seed: { type: 'string' },
      token: { type: 'string' },
      'base-time': { type: 'string' },
      faults: { type: 'string' },
    },
    strict: true,
  });
  const api = await startDemoApi({
    host: values.host,
    port: int('port', values.port),
    records: int('records', values.records),
    pageSize: int('page-size', values['page-size']),
    maxPageSize: int('max-page-size', values['max-page-size']),
    seed: int('seed', values.seed),
    token: values.token,
    baseTime: values['base-time'],
    faults: values.faults === undefined ? undefined : parseFaults(values.faults),
  });
  const faults = values.faults === undefined ? '' : ` with faults ${values.faults}`;
  const listening = values.host === '127.0.0.1' ? '' : ` listening on ${values.host}`;
  console.log(
    `demo source API on ${api.url}${listening} (/orders, /offset/orders, /cursor/orders, /link/orders)${faults}`,
  );
  const stop = (): void => {
    void api.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  console.error(`demo source API: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { dropTestState, testConfig, TOKEN } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// The real entry point, as `npm start` runs it: config from the environment, signals from the OS.

const config = testConfig();
afterAll(async () => dropTestState(config));

function startService(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(process.execPath, ['service/main.ts'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output };
}

describe('the service process', () => {
  it('serves, then shuts down cleanly on SIGTERM', async () => {
    const port = await freePort();
    const { child, output } = startService({
      AFLUENTE_PORT: String(port),
      AFLUENTE_MYSQL_URL: config.mysql.url,
      AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
      AFLUENTE_API_TOKENS: TOKEN,
      AFLUENTE_SHUTDOWN_GRACE_MS: '2000',
    });
    const exited = once(child, 'exit');
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      `the service to be ready; output:\n${output()}`,
      30_000,
    );
    const runs = await fetch(`http://127.0.0.1:${port}/runs`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(runs.status).toBe(200);

    const signalledAt = Date.now();
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    const lines = output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; signal?: string });
    expect(lines.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM' });
    // Tokens never reach the logs.
    expect(output()).not.toContain(TOKEN);
  });

  it('refuses to boot with a bad setting, naming the variable and what it expects', async () => {
    const { child, output } = startService({ AFLUENTE_PORT: 'http', AFLUENTE_API_TOKENS: TOKEN });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(78);
    expect(output()).toContain('AFLUENTE_PORT must be a TCP port from 1 to 65535 (got "http")');
  });

  it('refuses to boot without API tokens, because auth is always on', async () => {
    const { child, output } = startService({});
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(78);
    expect(output()).toContain('AFLUENTE_API_TOKENS must be set');
  });

  it('refuses to boot with an invalid sources file, naming the file, the source and the field', async () => {
    const { child, output } = startService({
      AFLUENTE_API_TOKENS: TOKEN,
      AFLUENTE_SOURCES_FILE: 'test/fixtures/bad-sources.yaml',
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(78);
    expect(output()).toMatch(
      /test\/fixtures\/bad-sources\.yaml:\d+:\d+: source "orders": pagination\.kind must be one of/,
    );
  });
});

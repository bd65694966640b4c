// moto in server mode: a local S3-compatible (and SQS-, Lambda-, EMR-compatible) server for the AWS adapters'
// tests. It comes from requirements.txt, installed into .venv by scripts/setup-python.sh.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from './net.ts';
import { waitFor } from './wait.ts';

const VENV = fileURLToPath(new URL('../../.venv/bin/', import.meta.url));
const MOTO_SERVER = `${VENV}moto_server`;

// moto_server's own entry point, plus a watchdog: it exits when its stdin closes, which happens when the test
// process that started it dies, even by SIGKILL or a crash that skips stop(). No orphaned servers.
const SERVE = [
  'import os, sys, threading',
  'threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()',
  'from moto.server import main',
  'main(sys.argv[1:])',
].join('\n');

export interface Moto {
  /** e.g. `http://127.0.0.1:41234` */
  endpoint: string;
  region: string;
  /** Dummy credentials and the region, as environment variables: the SDK needs some, moto takes any. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts a moto server on a free loopback port and waits until it answers HTTP. */
export async function startMoto(): Promise<Moto> {
  if (!existsSync(MOTO_SERVER)) {
    throw new Error(
      `${MOTO_SERVER} is missing: run \`bash scripts/setup-python.sh\` to install the test tools`,
    );
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  let output = '';
  const child = spawn(`${VENV}python`, ['-c', SERVE, '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // moto logs every request; the tail is enough to say why it did not start.
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-10_000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = once(child, 'exit');

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}:\n${output}`);
        const res = await fetch(`${endpoint}/moto-api/`).catch(() => undefined);
        await res?.arrayBuffer();
        return res ? true : undefined;
      },
      `moto_server to answer on ${endpoint}`,
      30_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const region = 'us-east-1';
  const env = {
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: region,
  };
  return { endpoint, region, env, stop };
}

import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { UnavailableError } from '../../service/errors.ts';
import { Dependencies } from '../../service/observability/dependencies.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { waitFor } from '../support/wait.ts';

const open: Dependencies[] = [];
afterEach(() => {
  for (const d of open.splice(0)) d.close();
});

/** Dependencies whose probes answer as `up` says, logging at debug into `lines`. */
function setup() {
  const up = { mysql: true, redis: true };
  const lines: { level: string; msg: string; err?: { message: string } }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const probe = (name: keyof typeof up) => async () => {
    if (!up[name]) throw new Error(`connect ECONNREFUSED (${name})`);
  };
  const deps = new Dependencies({
    probes: { mysql: probe('mysql'), redis: probe('redis') },
    logger: createLogger('debug', sink),
    pollMs: 20,
  });
  open.push(deps);
  const loud = () => lines.filter((l) => l.level !== 'debug').map((l) => `${l.level} ${l.msg}`);
  return { up, lines, deps, loud };
}

describe('Dependencies', () => {
  it('logs an outage once when it starts and once when it ends, and the failures in between at debug', async () => {
    const { up, lines, deps, loud } = setup();
    up.redis = false;
    for (let i = 0; i < 5; i++) deps.failed(new Error('worker lost its connection'), 'stage worker error');
    await waitFor(async () => (deps.state('redis').failures === 5 ? true : undefined), 'five failures');
    expect(deps.isDown('redis')).toBe(true);
    expect(deps.isDown('mysql')).toBe(false);
    expect(loud()).toEqual([
      'error Redis is unreachable: connect ECONNREFUSED (redis); failures it causes are logged at debug until it is back',
    ]);
    expect(lines.filter((l) => l.msg === 'stage worker error').map((l) => l.level)).toEqual(
      Array(5).fill('debug'),
    );

    up.redis = true;
    await waitFor(async () => (deps.isDown('redis') ? undefined : true), 'the poll to see Redis back');
    expect(loud()).toEqual([
      expect.stringMatching(/^error Redis is unreachable/),
      expect.stringMatching(/^info Redis is reachable again after \d+\.\d s \(5 failures in between\)$/),
    ]);
  });

  it('logs a failure no outage explains at its own level', async () => {
    const { lines, deps } = setup();
    deps.failed(new Error('a bug'), 'reconciler sweep failed');
    deps.failed(new Error('another'), 'stage worker error', { level: 'error' });
    await waitFor(async () => (lines.length === 2 ? true : undefined), 'two lines');
    expect(lines.map((l) => [l.level, l.msg, l.err?.message])).toEqual([
      ['warn', 'reconciler sweep failed', 'a bug'],
      ['error', 'stage worker error', 'another'],
    ]);
  });

  it('refuses with a 503 naming a dependency only while it is known to be down', async () => {
    const { up, deps } = setup();
    expect(() => deps.require('redis', 'no run was created')).not.toThrow();
    up.mysql = false;
    up.redis = false;
    expect(await deps.down()).toEqual(['mysql', 'redis']);
    expect(() => deps.require('redis', 'no run was created')).toThrow(
      new UnavailableError('Redis is unreachable; no run was created'),
    );
    expect(deps.unavailable(['mysql', 'redis']).message).toBe('MySQL and Redis are unreachable; retry later');
    const checks = await deps.check();
    expect(checks).toEqual({
      mysql: { ok: false, error: 'connect ECONNREFUSED (mysql)' },
      redis: { ok: false, error: 'connect ECONNREFUSED (redis)' },
    });
  });
});

import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateMariaDb, PrivateRedis } from '../support/private-services.ts';
import { alive } from '../support/processes.ts';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';

let redis: PrivateRedis;
let kept: PrivateRedis;
let mariadb: PrivateMariaDb;

beforeAll(async () => {
  [redis, kept, mariadb] = await Promise.all([
    PrivateRedis.start(),
    PrivateRedis.start({ keepData: true }),
    PrivateMariaDb.start(),
  ]);
});
afterAll(async () => {
  await Promise.all([redis?.dispose(), kept?.dispose(), mariadb?.dispose()]);
});

async function redisGet(url: string, key: string): Promise<string | null> {
  const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    return await client.get(key);
  } finally {
    client.disconnect();
  }
}

/** A bare TCP connection to the port, closed at once. */
async function connectTo(port: number): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
  } finally {
    socket.destroy();
  }
}

describe('private services', () => {
  it('stops Redis for real and starts it again on the same port, empty unless asked to keep data', async () => {
    for (const server of [redis, kept]) {
      const client = new Redis(server.url);
      await client.set('k', 'v');
      await client.quit();
    }
    await Promise.all([redis.stop(), kept.stop()]);
    expect(redis.running).toBe(false);
    await expect(connectTo(redis.port)).rejects.toThrow(/ECONNREFUSED/);

    const port = redis.port;
    await Promise.all([redis.start(), kept.start()]);
    expect(redis.port).toBe(port);
    expect(await redisGet(redis.url, 'k')).toBeNull();
    expect(await redisGet(kept.url, 'k')).toBe('v');
  });

  it('stops MariaDB for real (the process exits) and keeps its data across a restart', async () => {
    const conn = await createConnection({ uri: mariadb.url('mysql') });
    await conn.query('CREATE DATABASE kept');
    await conn.query('CREATE TABLE kept.t (id INT PRIMARY KEY)');
    await conn.query('INSERT INTO kept.t VALUES (7)');
    await conn.end();
    const pid = Number(await readFile(join(mariadb.dir, 'mariadbd.pid'), 'utf8'));

    await mariadb.stop();
    expect(alive(pid)).toBe(false);
    await expect(createConnection({ uri: mariadb.url('kept') })).rejects.toThrow(/ECONNREFUSED/);

    await mariadb.start();
    // A crash as well: the next start runs InnoDB's recovery, and the data is still there.
    await mariadb.restart('SIGKILL');
    const again = await createConnection({ uri: mariadb.url('kept') });
    const [rows] = await again.query('SELECT id FROM t');
    await again.end();
    expect(rows).toEqual([{ id: 7 }]);
  });
});

import { Queue } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ChaosRig } from '../support/chaos-rig.ts';
import { waitFor } from '../support/wait.ts';

// The service's own stores go away under a running pipeline: Redis for 20 s, MySQL for 30 s. The outage's length
// is the scenario itself, so it is waited out; every other wait polls for a state. When the store is back, the
// run finishes with every record loaded once.

const RECORDS = 3_000;
let rig: ChaosRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('an outage of a store of the service', () => {
  it('Redis down for 20 s in the middle of an ingest', { timeout: 600_000 }, async () => {
    rig = await ChaosRig.open({
      records: RECORDS,
      engine: 'embedded',
      faults: { slow: { pages: [2, 3], delayMs: 4_000 } },
    });
    const service = await rig.start();
    const id = await service.createRun({ source: 'demo' });
    await rig.stageRunning(service, id, 'ingest');
    await rig.redis.stop();
    const stoppedAt = Date.now();
    // New work is refused at once, naming Redis, while the running stage goes on.
    const refused = await waitFor(
      async () => {
        const res = await service.request('/runs', { method: 'POST', body: { source: 'demo' } });
        return res.status === 503 ? ((await res.json()) as { message: string }) : undefined;
      },
      'POST /runs to answer 503 while Redis is down',
      10_000,
    );
    expect(refused.message).toMatch(/^Redis is unreachable/);
    await sleep(Math.max(0, 20_000 - (Date.now() - stoppedAt)));
    // The service lived through it.
    expect(service.child.exitCode).toBeNull();
    await rig.redis.start();

    const run = await service.waitForEnd(id, 300_000);
    await rig.expectExactLoad(run);
    // The outage was logged once when it began and once when it ended, not on every failure it caused.
    const outage = service.logs().filter((l) => /^Redis is (unreachable|reachable again)/.test(l.msg));
    expect(outage.map((l) => l.msg.split(':')[0]?.split(' after')[0])).toEqual([
      'Redis is unreachable',
      'Redis is reachable again',
    ]);
  });

  it(
    'Redis back empty after 20 s (a failover to a fresh node) in the middle of an ingest',
    { timeout: 600_000 },
    async () => {
      rig = await ChaosRig.open({
        records: RECORDS,
        engine: 'embedded',
        redisKeepsData: false,
        faults: { slow: { pages: [2, 3], delayMs: 4_000 } },
      });
      const service = await rig.start();
      const id = await service.createRun({ source: 'demo' });
      await rig.stageRunning(service, id, 'ingest');
      await rig.redis.stop();
      await sleep(20_000);
      await rig.redis.start();

      // MySQL is the outbox: whatever the queues lost, the run's jobs are queued again from it.
      const run = await service.waitForEnd(id, 300_000);
      await rig.expectExactLoad(run);
      // The cap on concurrent steps lived in the lost Redis; the worker set it again when it reconnected.
      const queue = new Queue('transform', {
        connection: { url: rig.config.redis.url },
        prefix: rig.config.queue.prefix,
      });
      try {
        expect(await queue.getGlobalConcurrency()).toBe(rig.config.queue.maxConcurrentSteps);
      } finally {
        await queue.close();
      }
    },
  );

  it('MySQL down for 30 s while a Spark transform runs', { timeout: 900_000 }, async () => {
    rig = await ChaosRig.open({ records: RECORDS, engine: 'spark' });
    const service = await rig.start();
    const id = await service.createRun({ source: 'demo' });
    await rig.stageRunning(service, id, 'transform', { step: true });
    await rig.mariadb.stop();
    const stoppedAt = Date.now();
    // Reads answer 503 naming MySQL, not 500: the first answer that is not a 200 (a request may still have been
    // served before the server went) must be that.
    const refused = await waitFor(
      async () => {
        const res = await service.request(`/runs/${id}`);
        return res.status === 200
          ? undefined
          : [res.status, ((await res.json()) as { message: string }).message];
      },
      'GET /runs/:id to stop answering 200 while MySQL is down',
      10_000,
    );
    expect(refused).toEqual([503, 'MySQL is unreachable; retry later']);
    await sleep(Math.max(0, 30_000 - (Date.now() - stoppedAt)));
    expect(service.child.exitCode).toBeNull();
    await rig.mariadb.start();

    const run = await service.waitForEnd(id, 600_000);
    await rig.expectExactLoad(run);
    const outage = service.logs().filter((l) => /^MySQL is (unreachable|reachable again)/.test(l.msg));
    expect(outage.map((l) => l.msg.split(':')[0]?.split(' after')[0])).toEqual([
      'MySQL is unreachable',
      'MySQL is reachable again',
    ]);
  });
});

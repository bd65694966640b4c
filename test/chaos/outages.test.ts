import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ChaosRig } from '../support/chaos-rig.ts';

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
    await sleep(20_000);
    // The service lived through it.
    expect(service.child.exitCode).toBeNull();
    await rig.redis.start();

    const run = await service.waitForEnd(id, 300_000);
    await rig.expectExactLoad(run);
  });

  it('MySQL down for 30 s while a Spark transform runs', { timeout: 900_000 }, async () => {
    rig = await ChaosRig.open({ records: RECORDS, engine: 'spark' });
    const service = await rig.start();
    const id = await service.createRun({ source: 'demo' });
    await rig.stageRunning(service, id, 'transform', { step: true });
    await rig.mariadb.stop();
    await sleep(30_000);
    expect(service.child.exitCode).toBeNull();
    await rig.mariadb.start();

    const run = await service.waitForEnd(id, 600_000);
    await rig.expectExactLoad(run);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { ChaosRig } from '../support/chaos-rig.ts';
import { alive } from '../support/processes.ts';

// SIGTERM, as every deploy sends it, to the service's whole process group: a stage that can finish within the
// grace finishes in the same process, and its Spark step never sees the signal; one that cannot is handed back
// at once, and the next process runs it again from a clean start.

const RECORDS = 3_000;
let rig: ChaosRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('SIGTERM mid-stage', () => {
  it(
    'drains a Spark transform within the grace, then hands a Spark load back past it; every record loads once',
    { timeout: 900_000 },
    async () => {
      rig = await ChaosRig.open({ records: RECORDS, engine: 'spark' });
      let service = await rig.start({ AFLUENTE_SHUTDOWN_GRACE_MS: '300000' });
      const id = await service.createRun({ source: 'demo' });

      const transform = await rig.stageRunning(service, id, 'transform', { step: true });
      service.signalGroup('SIGTERM');
      const [drainedCode] = await service.exited;
      expect(drainedCode, service.output()).toBe(0);
      // The step ran to its end in the process that was told to stop, on its first attempt.
      expect(
        service.logs().some((l) => l.msg === 'stage completed' && l.stage === 'transform' && l.attempt === 1),
        service.output(),
      ).toBe(true);

      service = await rig.start({ AFLUENTE_SHUTDOWN_GRACE_MS: '1000' });
      const load = await rig.stageRunning(service, id, 'load', { step: true });
      const loadPid = Number(/^local:(\d+)$/.exec(load.externalId ?? '')?.[1]);
      service.signalGroup('SIGTERM');
      const [handedCode] = await service.exited;
      expect(handedCode, service.output()).toBe(0);
      expect(service.logs().some((l) => l.msg === 'released the job to its queue on shutdown')).toBe(true);
      // Handed back means stopped: no step of the old process goes on writing the warehouse.
      expect(alive(loadPid)).toBe(false);

      service = await rig.start();
      const run = await service.waitForEnd(id, 600_000);
      await rig.expectExactLoad(run);
      expect(run.jobs.find((j) => j.stage === 'transform')).toMatchObject({
        status: 'COMPLETED',
        externalId: transform.externalId,
        attempt: 1,
      });
      expect(run.jobs.find((j) => j.stage === 'load')?.externalId).not.toBe(load.externalId);
    },
  );
});

import { afterEach, describe, expect, it } from 'vitest';
import { ChaosRig } from '../support/chaos-rig.ts';
import { groupMembers } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

// SIGKILL, the crash no code runs after: the service in each stage, and a Spark step on its own. The next service
// process takes each stage over, and the warehouse ends with every record once.

const RECORDS = 3_000;
let rig: ChaosRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('SIGKILL', () => {
  it(
    'of the service in each stage (ingest, validate, transform, load on Spark): each is taken over, and every record loads once',
    { timeout: 900_000 },
    async () => {
      // Page 2 is slow, so the ingest is surely in flight at its kill.
      rig = await ChaosRig.open({
        records: RECORDS,
        engine: 'spark',
        faults: { slow: { pages: [2], delayMs: 3_000 } },
      });
      let service = await rig.start();
      const id = await service.createRun({ source: 'demo' });
      for (const stage of ['ingest', 'validate', 'transform', 'load']) {
        const step = stage === 'transform' || stage === 'load';
        await rig.stageRunning(service, id, stage, { step });
        await service.kill();
        rig.api.setFaults({});
        service = await rig.start();
      }

      const run = await service.waitForEnd(id, 600_000);
      await rig.expectExactLoad(run);
      // A Spark step lives on in its own process group when its service is killed: the next process either finds
      // it finished and records its result, or kills what is left of it and starts the step again. Either way the
      // stage completed once.
      for (const stage of ['transform', 'load']) {
        const jobs = run.jobs.filter((j) => j.stage === stage);
        expect(jobs.map((j) => j.status)).toEqual(['COMPLETED']);
        expect(jobs[0]?.externalId).toMatch(/^local:\d+$/);
      }
    },
  );

  it(
    'of a Spark step (its whole process group, as the OOM killer would): the attempt fails, and the retry loads every record once',
    { timeout: 900_000 },
    async () => {
      rig = await ChaosRig.open({ records: RECORDS, engine: 'spark' });
      const service = await rig.start();
      const id = await service.createRun({ source: 'demo' });
      const job = await rig.stageRunning(service, id, 'transform', { step: true });
      const pid = Number(/^local:(\d+)$/.exec(job.externalId ?? '')?.[1]);
      // Killed once the step has started its Python driver, so the JVM and Python both die mid-work.
      await waitFor(
        async () => ((await groupMembers(pid)).some((p) => p.cmd.includes('python')) ? true : undefined),
        'the Spark step to start its Python driver',
        120_000,
      );
      process.kill(-pid, 'SIGKILL');

      const run = await service.waitForEnd(id, 600_000);
      await rig.expectExactLoad(run);
      const transforms = run.jobs.filter((j) => j.stage === 'transform');
      expect(transforms.at(-1)).toMatchObject({ status: 'COMPLETED' });
      expect(transforms.at(-1)?.attempt).toBeGreaterThan(1);
      expect(transforms.at(-1)?.externalId).not.toBe(job.externalId);
      const failure = service.logs().find((l) => l.msg.startsWith('stage failed') && l.stage === 'transform');
      expect(failure?.msg).toMatch(/killed|signal|SIGKILL|exit/i);
    },
  );
});

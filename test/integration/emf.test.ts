import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { waitFor } from '../support/wait.ts';

// aws-embedded-metrics writes EMF documents to stdout (console.log) in its Local environment, which is what
// the ECS awslogs driver ships to CloudWatch. The test reads those real documents; nothing is mocked.
let t: TestApp;
const lines: string[] = [];
beforeAll(async () => {
  vi.spyOn(console, 'log').mockImplementation((line: unknown) => void lines.push(String(line)));
  t = await startTestApp({
    env: { AFLUENTE_ROLES: 'api', AFLUENTE_METRICS_EMF: 'true', AFLUENTE_METRICS_NAMESPACE: 'AfluenteTest' },
  });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await t.close();
});

interface Emf {
  _aws: {
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  source?: string;
  RunsCreated?: number;
}

describe('CloudWatch EMF', () => {
  it('emits the runs-created counter as an EMF document when enabled', async () => {
    await t.app.runs.create({ source: 'demo' });
    const doc = await waitFor(
      async () =>
        lines
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Emf)
          .find((d) => d._aws?.CloudWatchMetrics?.[0]?.Metrics.some((m) => m.Name === 'RunsCreated')),
      'an EMF document',
    );
    const directive = doc._aws.CloudWatchMetrics[0];
    expect(directive?.Namespace).toBe('AfluenteTest');
    expect(directive?.Dimensions).toEqual([['source']]);
    expect(directive?.Metrics).toEqual([{ Name: 'RunsCreated', Unit: 'Count' }]);
    expect(doc).toMatchObject({ source: 'demo', RunsCreated: 1 });
  });
});

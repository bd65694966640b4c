import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { METRIC } from '../../contract/metrics.ts';
import { startDemoApi } from '../../demo/source-api/server.ts';
import { countMetric } from '../../lambdas/common/metrics.ts';
import { handler } from '../../lambdas/ingest/handler.ts';
import { GaugeSampler } from '../../service/observability/gauge-sampler.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { demoConfig, PAGINATIONS, request, tempLake } from '../support/ingest.ts';
import { waitFor } from '../support/wait.ts';

// aws-embedded-metrics writes EMF documents to stdout (console.log) in its Local environment, which is what
// the ECS awslogs driver and Lambda ship to CloudWatch. The tests read those real documents; nothing is mocked.
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
beforeEach(() => {
  lines.length = 0;
});

interface Emf {
  _aws: {
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [field: string]: unknown;
}

function documents(metric: string): Emf[] {
  return lines
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Emf)
    .filter((d) => d._aws?.CloudWatchMetrics?.[0]?.Metrics.some((m) => m.Name === metric));
}

async function document(metric: string, count = 1): Promise<Emf[]> {
  return waitFor(async () => {
    const found = documents(metric);
    return found.length >= count ? found : undefined;
  }, `${count} EMF document(s) of ${metric}`);
}

describe('CloudWatch EMF', () => {
  it('emits the runs-created counter with the aggregate and the per-source dimension sets', async () => {
    await t.app.runs.create({ source: 'demo' });
    const [doc] = await document(METRIC.runsCreated);
    const directive = doc?._aws.CloudWatchMetrics[0];
    expect(directive?.Namespace).toBe('AfluenteTest');
    // The empty set is the total the alarms read; Source is the drill-down.
    expect(directive?.Dimensions).toEqual([[], ['Source']]);
    expect(directive?.Metrics).toEqual([{ Name: 'RunsCreated', Unit: 'Count' }]);
    expect(doc).toMatchObject({ Source: 'demo', RunsCreated: 1 });
  });

  it('samples active runs, the oldest one, and the waiting jobs of each queue', async () => {
    await t.app.runs.create({ source: 'demo' });
    const sampler = new GaugeSampler({ orm: t.app.orm, queues: t.app.queues, metrics: t.app.metrics });
    // No worker runs in this app: the first run's ingest waits in its queue, and this test's run waits for the
    // demo source's one slot (maxActiveRuns 1) without a job. Both are active.
    const sample = await sampler.emit();
    expect(sample.runsActive).toBe(2);
    expect(sample.oldestActiveRunAge).toBeGreaterThan(0);
    expect(sample.queueWaiting).toEqual({ ingest: 1, validate: 0, transform: 0, load: 0 });

    const [active] = await document(METRIC.runsActive);
    expect(active?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[]]);
    expect(active).toMatchObject({ RunsActive: 2 });
    const [age] = await document(METRIC.oldestActiveRunAge);
    expect(age?._aws.CloudWatchMetrics[0]?.Metrics).toEqual([
      { Name: 'OldestActiveRunAge', Unit: 'Seconds' },
    ]);

    // One total (what the worker service scales on), then one drill-down per queue without a second total.
    const waiting = await document(METRIC.queueWaiting, 5);
    const totals = waiting.filter((d) => d._aws.CloudWatchMetrics[0]?.Dimensions.length === 1 && !d.Queue);
    expect(totals.map((d) => d.QueueWaiting)).toEqual([1]);
    const perQueue = Object.fromEntries(
      waiting
        .filter((d) => d.Queue)
        .map((d) => [d.Queue, [d.QueueWaiting, d._aws.CloudWatchMetrics[0]?.Dimensions]]),
    );
    expect(perQueue).toEqual({
      ingest: [1, [['Queue']]],
      validate: [0, [['Queue']]],
      transform: [0, [['Queue']]],
      load: [0, [['Queue']]],
    });
  });

  it('counts a failed attempt of a Spark stage as a step failure, and of any other stage not', async () => {
    t.app.metrics.attemptFailed('ingest');
    t.app.metrics.attemptFailed('load');
    const [doc] = await document(METRIC.stepsFailed);
    expect(doc).toMatchObject({ Stage: 'load', StepsFailed: 1 });
    expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[], ['Stage']]);
    expect(documents(METRIC.stepsFailed)).toHaveLength(1);
  });

  it('emits the page requests an ingest invocation retried', async () => {
    const api = await startDemoApi({ records: 10, pageSize: 5 });
    api.setFaults({ serverErrors: { pages: [1], status: 503, times: 2 } });
    const before = process.env.AFLUENTE_METRICS_EMF;
    // The handler reads the flag from its environment, as on Lambda.
    process.env.AFLUENTE_METRICS_EMF = 'true';
    try {
      const lake = await tempLake();
      const { pagination } = PAGINATIONS.page(5);
      const config = await demoConfig(`${api.url}/orders`, pagination, { allowPrivateNetwork: true });
      expect(await handler(request(config, lake))).toMatchObject({ kind: 'done', records: 10, retries: 2 });
      const [doc] = await document(METRIC.pageRetries);
      expect(doc).toMatchObject({ Source: 'demo', PageRetries: 2 });
      expect(doc?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[], ['Source']]);
    } finally {
      if (before === undefined) delete process.env.AFLUENTE_METRICS_EMF;
      else process.env.AFLUENTE_METRICS_EMF = before;
      await api.close();
    }
  });

  it("emits the Lambdas' record counts only when AFLUENTE_METRICS_EMF is true", async () => {
    await countMetric(METRIC.recordsRejected, 3, 'demo', {});
    await countMetric(METRIC.recordsRejected, 7, 'demo', { AFLUENTE_METRICS_EMF: 'true' });
    const [doc] = await document(METRIC.recordsRejected);
    expect(doc).toMatchObject({ Source: 'demo', RecordsRejected: 7 });
    expect(documents(METRIC.recordsRejected)).toHaveLength(1);
  });
});

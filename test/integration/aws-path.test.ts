import type { LambdaClient } from '@aws-sdk/client-lambda';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { EntityManager } from '@mikro-orm/mysql';
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { handler as ingest } from '../../lambdas/ingest/handler.ts';
import { handler as validate } from '../../lambdas/validate/handler.ts';
import type { LoadedSources } from '../../service/config/sources.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { demoSourcesAt, startTestApp, type TestApp } from '../support/app.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { waitFor } from '../support/wait.ts';
import { successRecord } from '../support/lambda-destination.ts';

// The AWS invocation path end to end: the service invokes with InvocationType Event, the result comes back as a
// Lambda destination record on an SQS queue (moto's, over HTTP), the service's SQS consumer hands it to the
// waiting worker, and the run advances. Only the Lambda service itself is stood in for, client-side, because no
// emulator here can run a function without Docker: this fake runs the real handler in-process and then sends the
// destination record AWS would send, twice, as SQS's at-least-once delivery may.

const RECORDS = 800;
let moto: Moto;
let api: DemoApi;
let sources: LoadedSources;
let queueUrl = '';
let sqs: SQSClient;

beforeAll(async () => {
  [moto, api] = await Promise.all([
    startMoto(),
    startDemoApi({ records: RECORDS, pageSize: 200, faults: { badRecords: { every: 100 } } }),
  ]);
  for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
  vi.stubEnv('AWS_SESSION_TOKEN', undefined);
  sqs = new SQSClient({ endpoint: moto.endpoint, region: moto.region });
  queueUrl =
    (await sqs.send(new CreateQueueCommand({ QueueName: `afluente-events-${randomUUID().slice(0, 8)}` })))
      .QueueUrl ?? '';
  sources = await demoSourcesAt(`${api.url}/orders`);
});
afterAll(async () => {
  sqs?.destroy();
  await api?.close();
  await moto?.stop();
  vi.unstubAllEnvs();
});

const HANDLERS: Record<string, (request: never) => Promise<unknown>> = {
  'afluente-ingest': ingest,
  'afluente-validate': validate,
};

/** Stands in for the Lambda service: accepts an async invoke (202), runs the handler, sends the destination record. */
function fakeLambda(invocations: string[]): LambdaClient {
  return {
    send: async (command: {
      input: { FunctionName: string; InvocationType: string; Payload: Uint8Array };
    }) => {
      const { FunctionName, InvocationType, Payload } = command.input;
      expect(InvocationType).toBe('Event');
      const request = JSON.parse(Buffer.from(Payload).toString('utf8')) as { invocationId: string };
      invocations.push(`${FunctionName}:${request.invocationId}`);
      setImmediate(() => {
        void (async () => {
          const result = await HANDLERS[FunctionName]!(request as never);
          const record = successRecord(FunctionName, request, result);
          for (let copy = 0; copy < 2; copy++)
            await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: record }));
        })();
      });
      return { StatusCode: 202 };
    },
    destroy: () => undefined,
  } as unknown as LambdaClient;
}

describe('the AWS invocation path', () => {
  it(
    'runs ingest and validate through async invokes whose results arrive on SQS, each applied once',
    { timeout: 60_000 },
    async () => {
      const invocations: string[] = [];
      const lake = await mkdtemp(join(tmpdir(), 'afluente-aws-'));
      const t: TestApp = await startTestApp({
        sources,
        lambdaClient: fakeLambda(invocations),
        handlers: { transform: () => Promise.resolve({}), load: () => Promise.resolve({}) },
        env: {
          AFLUENTE_LAKE_URI: `file://${lake}`,
          AFLUENTE_LAMBDA_INVOKER: 'aws',
          AFLUENTE_LAMBDA_FUNCTIONS: 'ingest=afluente-ingest,validate=afluente-validate',
          AFLUENTE_EVENTS_QUEUE_URL: queueUrl,
          AFLUENTE_AWS_ENDPOINT: moto.endpoint,
        },
      });
      try {
        const { run } = await t.app.runs.create({ source: 'demo' });
        const done = await waitFor(
          async () => {
            const r = await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Run, run.id);
            return ['COMPLETED', 'FAILED'].includes(r.status) ? r : undefined;
          },
          'the run to finish',
          45_000,
        );
        expect(done.status).toBe('COMPLETED');
        expect({ fetched: done.fetched, valid: done.valid, rejected: done.rejected }).toEqual({
          fetched: RECORDS,
          valid: RECORDS - 8,
          rejected: 8,
        });
        const jobs = await (t.app.orm.em.fork() as EntityManager).find(
          Job,
          { run: run.id },
          { orderBy: { id: 'asc' } },
        );
        expect(jobs.map((j) => [j.stage, j.status, j.attempt])).toEqual([
          ['ingest', 'COMPLETED', 1],
          ['validate', 'COMPLETED', 1],
          ['transform', 'COMPLETED', 1],
          ['load', 'COMPLETED', 1],
        ]);
        expect(invocations).toEqual([
          `afluente-ingest:job-${jobs[0]!.id}.1.0`,
          `afluente-validate:job-${jobs[1]!.id}.1.g0`,
        ]);
      } finally {
        await t.close();
      }
    },
  );
});

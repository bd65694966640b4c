import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { FunctionName, InvocationEvent } from '../../contract/invocation.ts';
import { parseDestinationRecord, PoisonMessageError } from '../../service/invocation/destination-record.ts';
import { InvocationEvents } from '../../service/invocation/events.ts';
import {
  SqsEventConsumer,
  type PollResult,
  type SqsEventConsumerOptions,
} from '../../service/invocation/sqs-consumer.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { waitFor } from '../support/wait.ts';

// The events path as it runs on AWS: Lambda destination records on an SQS queue (moto, a local SQS-compatible
// server) become InvocationEvents in the real Redis. Queues have a 1 s visibility timeout and a DLQ after 2
// receives, so redelivery and the redrive policy play out in seconds.

const PREFIX = `test-sqs-${randomBytes(4).toString('hex')}`;
const FUNCTIONS: Record<string, FunctionName> = {
  'afluente-ingest': 'ingest',
  'afluente-validate': 'validate',
};
const VISIBILITY = 1;

let moto: Moto;
let sqs: SQSClient;
let redis: Redis;
let events: InvocationEvents;

beforeAll(async () => {
  moto = await startMoto();
  // Dummy credentials for the SDK's default chain; moto accepts any. Never real ones here.
  for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
  vi.stubEnv('AWS_SESSION_TOKEN', undefined);
  sqs = new SQSClient({ endpoint: moto.endpoint, region: moto.region });
  redis = new Redis('redis://127.0.0.1:6379');
  events = new InvocationEvents(redis, PREFIX);
});
afterAll(async () => {
  if (redis) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await redis.quit();
  }
  sqs?.destroy();
  await moto?.stop();
  vi.unstubAllEnvs();
});

// --- records, as Lambda's destinations write them ---

function arn(name: string): string {
  return `arn:aws:lambda:us-east-1:123456789012:function:${name}:$LATEST`;
}

function record(
  invocationId: string,
  options: {
    fn?: string;
    requestId?: string;
    condition?: string;
    functionError?: string;
    responsePayload?: unknown;
  },
): string {
  const condition = options.condition ?? 'Success';
  return JSON.stringify({
    version: '1.0',
    timestamp: '2026-01-31T10:00:00.000Z',
    requestContext: {
      requestId: options.requestId ?? randomUUID(),
      functionArn: arn(options.fn ?? 'afluente-ingest'),
      condition,
      approximateInvokeCount: condition === 'Success' ? 1 : 3,
    },
    requestPayload: { invocationId, runId: 12, jobId: 34, source: 'orders' },
    responseContext: {
      statusCode: 200,
      executedVersion: '$LATEST',
      ...(options.functionError ? { functionError: options.functionError } : {}),
    },
    ...(options.responsePayload === undefined ? {} : { responsePayload: options.responsePayload }),
  });
}

const DONE = {
  kind: 'done',
  manifestKey: 'raw/source=orders/dt=2026-01-31/run=12/_manifest.json',
  files: 1,
  records: 3,
  bytes: 120,
  pages: 1,
  nextCursor: null,
};

// --- queues and consumers ---

interface Queues {
  url: string;
  dlqUrl: string;
}

async function createQueues(): Promise<Queues> {
  const name = `events-${randomBytes(4).toString('hex')}`;
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${name}-dlq` }));
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  const queue = await sqs.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: {
        VisibilityTimeout: String(VISIBILITY),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: Attributes?.QueueArn, maxReceiveCount: 2 }),
      },
    }),
  );
  return { url: queue.QueueUrl ?? '', dlqUrl: dlq.QueueUrl ?? '' };
}

async function send(queueUrl: string, body: string): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}

/** Messages in the queue, visible or in flight: 0 once every message is deleted. */
async function messagesIn(queueUrl: string): Promise<number> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages) + Number(Attributes.ApproximateNumberOfMessagesNotVisible)
  );
}

/** A client that hands every command to `hook` first; the hook may throw instead of sending. */
function wrapped(hook: (command: object) => void): SQSClient {
  const client = new SQSClient({ endpoint: moto.endpoint, region: moto.region });
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver) as unknown;
      return async (command: object, options?: object) => {
        hook(command);
        return target.send(command as never, options as never);
      };
    },
  });
}

function captureLogs(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

function consumer(queueUrl: string, options: Partial<SqsEventConsumerOptions> = {}): SqsEventConsumer {
  return new SqsEventConsumer({
    queueUrl,
    client: sqs,
    events,
    functionNames: FUNCTIONS,
    logger: captureLogs().logger,
    waitTimeSeconds: 0,
    visibilityTimeoutSeconds: VISIBILITY,
    ...options,
  });
}

/** Polls until `count` messages were received in all, and sums what the polls did. */
async function pollUntil(c: SqsEventConsumer, count: number): Promise<PollResult> {
  const total: PollResult = { received: 0, delivered: 0, duplicates: 0, poison: 0 };
  await waitFor(
    async () => {
      const r = await c.pollOnce();
      for (const k of Object.keys(total) as (keyof PollResult)[]) total[k] += r[k];
      return total.received >= count ? true : undefined;
    },
    `${count} messages`,
    10_000,
  );
  return total;
}

function waitEvent(invocationId: string): Promise<InvocationEvent> {
  return events.wait(invocationId, AbortSignal.timeout(5000));
}

/** Events delivered for the invocation and not read yet. */
function pending(invocationId: string): Promise<number> {
  return redis.llen(`${PREFIX}:invocation:${invocationId}`);
}

function id(label: string): string {
  return `job-${label}-${randomBytes(3).toString('hex')}`;
}

describe('parseDestinationRecord', () => {
  it('maps a success record to a success event, keyed by request id and condition', () => {
    const body = record('job-1.0.0', { requestId: 'r-1', responsePayload: DONE });
    expect(parseDestinationRecord(body, FUNCTIONS)).toEqual({
      eventId: 'r-1:Success',
      event: { invocationId: 'job-1.0.0', function: 'ingest', outcome: 'success', result: DONE },
    });
  });

  it('maps failure records, with or without an error payload', () => {
    const crashed = record('job-1.0.0', {
      fn: 'afluente-validate',
      requestId: 'r-1',
      condition: 'RetriesExhausted',
      functionError: 'Unhandled',
      responsePayload: { errorType: 'Runtime.OutOfMemory', errorMessage: 'out of memory', trace: [] },
    });
    expect(parseDestinationRecord(crashed, FUNCTIONS)).toEqual({
      eventId: 'r-1:RetriesExhausted',
      event: {
        invocationId: 'job-1.0.0',
        function: 'validate',
        outcome: 'failure',
        error: {
          reason: 'lambda_retries_exhausted',
          message: 'validate Lambda failed (RetriesExhausted, Runtime.OutOfMemory): out of memory',
          retryable: true,
        },
      },
    });
    // The Lambda guide's own example has an errorMessage and no errorType.
    const noType = record('job-1.0.0', {
      condition: 'RetriesExhausted',
      functionError: 'Unhandled',
      responsePayload: { errorMessage: 'Process exited before completing request' },
    });
    expect(parseDestinationRecord(noType, FUNCTIONS).event).toMatchObject({
      error: {
        message:
          'ingest Lambda failed (RetriesExhausted, Unhandled): Process exited before completing request',
      },
    });
    const expired = parseDestinationRecord(record('job-1.0.0', { condition: 'EventAgeExceeded' }), FUNCTIONS);
    expect(expired.event).toMatchObject({
      outcome: 'failure',
      error: {
        reason: 'lambda_event_age_exceeded',
        message: expect.stringMatching(/^ingest Lambda failed \(EventAgeExceeded\): /),
      },
    });
  });

  it.each([
    ['not JSON', '{"version":', /the message body is not JSON/],
    ['not an object', '42', /not a Lambda destination record: the record must be object/],
    [
      'no invocationId',
      record('x', { responsePayload: DONE }).replace('"invocationId":"x",', ''),
      /requestPayload must have required property 'invocationId'/,
    ],
    [
      'an unknown function',
      record('x', { fn: 'afluente-other', responsePayload: DONE }),
      /unknown Lambda function "afluente-other"/,
    ],
    [
      'a prototype key as function',
      record('x', { fn: 'constructor', responsePayload: DONE }),
      /unknown Lambda function "constructor"/,
    ],
    [
      'an ARN that is not a function',
      record('x', { responsePayload: DONE }).replace(arn('afluente-ingest'), 'arn:aws:sqs:us-east-1:1:q'),
      /"arn:aws:sqs:us-east-1:1:q" is not a Lambda function ARN/,
    ],
    [
      'a success without a result',
      record('x', {}),
      /Success record of ingest invocation x has no result object/,
    ],
  ])('rejects a message with %s as poison', (_, body, message) => {
    expect(() => parseDestinationRecord(body, FUNCTIONS)).toThrow(PoisonMessageError);
    expect(() => parseDestinationRecord(body, FUNCTIONS)).toThrow(message);
  });
});

describe('SqsEventConsumer', () => {
  it('turns a success record and a failure record into the events their waiters get', async () => {
    const queues = await createQueues();
    const [ok, failed] = [id('ok'), id('failed')];
    await send(queues.url, record(ok, { responsePayload: DONE }));
    await send(
      queues.url,
      record(failed, {
        condition: 'RetriesExhausted',
        functionError: 'Unhandled',
        responsePayload: { errorType: 'Error', errorMessage: 'boom', trace: ['at handler'] },
      }),
    );

    expect(await pollUntil(consumer(queues.url), 2)).toEqual({
      received: 2,
      delivered: 2,
      duplicates: 0,
      poison: 0,
    });
    expect(await waitEvent(ok)).toEqual({
      invocationId: ok,
      function: 'ingest',
      outcome: 'success',
      result: DONE,
    });
    expect(await waitEvent(failed)).toEqual({
      invocationId: failed,
      function: 'ingest',
      outcome: 'failure',
      error: {
        reason: 'lambda_retries_exhausted',
        message: 'ingest Lambda failed (RetriesExhausted, Error): boom',
        retryable: true,
      },
    });
    expect(await messagesIn(queues.url)).toBe(0);
  });

  it('delivers a duplicated record once, and deletes both copies', async () => {
    const queues = await createQueues();
    const invocation = id('dup');
    const body = record(invocation, { requestId: randomUUID(), responsePayload: DONE });
    await send(queues.url, body);
    await send(queues.url, body);

    expect(await pollUntil(consumer(queues.url), 2)).toEqual({
      received: 2,
      delivered: 1,
      duplicates: 1,
      poison: 0,
    });
    expect(await pending(invocation)).toBe(1);
    expect(await waitEvent(invocation)).toMatchObject({ outcome: 'success' });
    expect(await pending(invocation)).toBe(0);
    expect(await messagesIn(queues.url)).toBe(0);
  });

  it('routes results that arrive out of order to their own waiters', async () => {
    const queues = await createQueues();
    const base = id('ooo');
    const [first, second] = [`${base}.0.0`, `${base}.1.0`];
    const waiters = [waitEvent(first), waitEvent(second)];
    await send(queues.url, record(second, { responsePayload: { ...DONE, records: 2 } }));
    await send(queues.url, record(first, { responsePayload: { ...DONE, records: 1 } }));

    await pollUntil(consumer(queues.url), 2);
    const [a, b] = await Promise.all(waiters);
    expect(a).toMatchObject({ invocationId: first, result: { records: 1 } });
    expect(b).toMatchObject({ invocationId: second, result: { records: 2 } });
  });

  it('leaves a poison message hidden for the backoff, never delivers it, and lets the redrive move it to the DLQ', async () => {
    const queues = await createQueues();
    const unknownFn = id('unknown-fn');
    const bodies = ['not json at all', record(unknownFn, { fn: 'afluente-other', responsePayload: DONE })];
    for (const body of bodies) await send(queues.url, body);
    const calls: string[] = [];
    const { logger, lines } = captureLogs();
    const c = consumer(queues.url, {
      client: wrapped((command) => calls.push(command.constructor.name)),
      logger,
      poisonBackoffSeconds: 2,
    });

    expect(await pollUntil(c, 2)).toMatchObject({ received: 2, delivered: 0, poison: 2 });
    // Past the queue's 1 s visibility: a consumer that only left them would get them again now.
    await sleep(1300);
    expect(await c.pollOnce()).toMatchObject({ received: 0 });
    expect(calls.filter((name) => name === 'ChangeMessageVisibilityCommand')).toHaveLength(2);

    // After the backoff, the second receive: maxReceiveCount is reached.
    expect(await pollUntil(c, 2)).toMatchObject({ received: 2, poison: 2 });
    const poisonLogs = lines.filter((l) => String(l.msg).includes('poison message'));
    expect(poisonLogs).toHaveLength(4);
    expect(poisonLogs.map((l) => l.receiveCount)).toEqual([1, 1, 2, 2]);
    expect(poisonLogs.map((l) => String(l.msg))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/not JSON/),
        expect.stringMatching(/unknown Lambda function "afluente-other"/),
      ]),
    );

    // The next receive after the backoff finds them over the limit, and SQS moves them to the DLQ.
    await sleep(2300);
    expect(await c.pollOnce()).toMatchObject({ received: 0 });
    expect(await messagesIn(queues.url)).toBe(0);
    const dlq = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queues.dlqUrl, MaxNumberOfMessages: 10 }),
    );
    expect((dlq.Messages ?? []).map((m) => m.Body).sort()).toEqual([...bodies].sort());

    expect(calls.filter((name) => name === 'DeleteMessageCommand')).toHaveLength(0);
    expect(await pending(unknownFn)).toBe(0);
    expect(await redis.keys(`${PREFIX}:event:*`)).not.toContainEqual(expect.stringContaining(unknownFn));
  });

  it('when the service dies between deliver and delete, the redelivery makes no second event and is deleted', async () => {
    const queues = await createQueues();
    const invocation = id('restart');
    await send(queues.url, record(invocation, { responsePayload: DONE }));
    const dying = consumer(queues.url, {
      client: wrapped((command) => {
        if (command instanceof DeleteMessageCommand) throw new Error('the service died before DeleteMessage');
      }),
    });

    await expect(pollUntil(dying, 1)).rejects.toThrow(/1 of 1 event messages could not be handled.*died/);
    expect(await waitEvent(invocation)).toMatchObject({ invocationId: invocation, outcome: 'success' });
    expect(await messagesIn(queues.url)).toBe(1);

    // A new instance gets the message again once its visibility timeout is over.
    const restarted = consumer(queues.url);
    expect(await pollUntil(restarted, 1)).toEqual({ received: 1, delivered: 0, duplicates: 1, poison: 0 });
    expect(await pending(invocation)).toBe(0);
    expect(await messagesIn(queues.url)).toBe(0);
  });

  it('start() consumes in the background and stop() ends a long poll at once', async () => {
    const queues = await createQueues();
    const c = consumer(queues.url, { waitTimeSeconds: 20 });
    c.start();
    const first = id('loop');
    await send(queues.url, record(first, { responsePayload: DONE }));
    expect(await waitEvent(first)).toMatchObject({ invocationId: first });
    await waitFor(
      async () => ((await messagesIn(queues.url)) === 0 ? true : undefined),
      'the message deleted',
    );

    // The loop is now in a 20 s long poll.
    await sleep(200);
    const stopping = Date.now();
    await c.stop();
    expect(Date.now() - stopping).toBeLessThan(1000);

    const late = id('late');
    await send(queues.url, record(late, { responsePayload: DONE }));
    await sleep(500);
    expect(await pending(late)).toBe(0);
    expect(await messagesIn(queues.url)).toBe(1);
  });

  it('keeps polling with a growing backoff when SQS fails, and stops during the backoff', async () => {
    const receives: number[] = [];
    const { logger, lines } = captureLogs();
    const c = consumer(`${moto.endpoint}/123456789012/no-such-queue`, {
      client: wrapped((command) => {
        if (command instanceof ReceiveMessageCommand) receives.push(Date.now());
      }),
      logger,
    });
    c.start();
    await sleep(3500);
    // Receives at about 0 s, 1 s (1 s backoff) and 3 s (2 s backoff); a loop without backoff makes dozens.
    expect(receives).toHaveLength(3);
    expect((receives[2] ?? 0) - (receives[1] ?? 0)).toBeGreaterThanOrEqual(1900);
    const failures = lines.filter((l) => l.msg === 'events queue: polling failed');
    expect(failures.map((l) => l.retryInMs)).toEqual([1000, 2000, 4000]);

    const stopping = Date.now();
    await c.stop();
    expect(Date.now() - stopping).toBeLessThan(500);
  });
});

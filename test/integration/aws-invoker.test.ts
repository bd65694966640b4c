import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { IngestRequest } from '../../contract/ingest.ts';
import type { ValidateRequest } from '../../contract/validate.ts';
import { AwsLambdaInvoker } from '../../service/invocation/aws-invoker.ts';
import { startMoto, type Moto } from '../support/moto.ts';

// moto runs a Lambda function's code in Docker, which this machine does not have, and aws-sdk-client-mock is
// not installed: so the requests the invoker sends, and how it reads Lambda's answers, are checked with a
// hand-written fake client below. Only the default client's wiring (region, endpoint) talks to moto, through
// an Invoke of a function that does not exist, which moto answers without Docker.

const FUNCTIONS = {
  ingest: 'afluente-ingest',
  validate: 'arn:aws:lambda:eu-west-1:123456789012:function:afluente-validate',
};

interface Answer {
  StatusCode?: number;
  FunctionError?: string;
}

/** A LambdaClient stand-in: records each command, answers with `answer`. */
function fakeClient(answer: Answer | Error = { StatusCode: 202 }) {
  const sent: InvokeCommand[] = [];
  const fake = {
    sent,
    destroyed: false,
    async send(command: InvokeCommand) {
      sent.push(command);
      if (answer instanceof Error) throw answer;
      return { $metadata: { httpStatusCode: answer.StatusCode }, ...answer };
    },
    destroy() {
      fake.destroyed = true;
    },
  };
  return fake;
}

function invoker(fake: ReturnType<typeof fakeClient>): AwsLambdaInvoker {
  return new AwsLambdaInvoker({ functions: FUNCTIONS, client: fake as unknown as LambdaClient });
}

// The invoker passes the request through as it is; its fields beyond invocationId do not matter here.
const ingestRequest = { invocationId: 'job-12.1.0', runId: 7, jobId: 12, source: 'orders' } as IngestRequest;

function payloadOf(command: InvokeCommand | undefined): unknown {
  const payload = command?.input.Payload;
  return JSON.parse(typeof payload === 'string' ? payload : new TextDecoder().decode(payload as Uint8Array));
}

describe('AwsLambdaInvoker', () => {
  it('invokes the configured function asynchronously with the request as JSON', async () => {
    const fake = fakeClient();
    await invoker(fake).invoke('ingest', 'job-12.1.0', ingestRequest);

    expect(fake.sent).toHaveLength(1);
    expect(fake.sent[0]).toBeInstanceOf(InvokeCommand);
    expect(fake.sent[0]?.input).toMatchObject({ FunctionName: 'afluente-ingest', InvocationType: 'Event' });
    expect(payloadOf(fake.sent[0])).toEqual(ingestRequest);
  });

  it('sends each function to its own deployed function, and the invocation id the caller waits on', async () => {
    const fake = fakeClient();
    const request = { invocationId: 'stale', runId: 7, jobId: 13, group: 2 } as ValidateRequest;
    await invoker(fake).invoke('validate', 'job-13.1.2', request);

    expect(fake.sent[0]?.input.FunctionName).toBe(FUNCTIONS.validate);
    expect(payloadOf(fake.sent[0])).toEqual({ ...request, invocationId: 'job-13.1.2' });
  });

  it('fails with the status and the function error when Lambda does not answer 202', async () => {
    const unhandled = fakeClient({ StatusCode: 200, FunctionError: 'Unhandled' });
    await expect(invoker(unhandled).invoke('ingest', 'job-12.1.0', ingestRequest)).rejects.toThrow(
      'Lambda did not queue ingest invocation job-12.1.0 (afluente-ingest): it answered status 200, ' +
        'FunctionError Unhandled, not 202',
    );
    const noStatus = fakeClient({});
    await expect(invoker(noStatus).invoke('ingest', 'job-12.1.0', ingestRequest)).rejects.toThrow(
      /answered status none, not 202/,
    );
  });

  it("passes the SDK's error on", async () => {
    const error = Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
    await expect(invoker(fakeClient(error)).invoke('ingest', 'job-12.1.0', ingestRequest)).rejects.toBe(
      error,
    );
  });

  it('cancel only records the invocation: a running Lambda cannot be stopped', async () => {
    const fake = fakeClient();
    const lambda = invoker(fake);
    lambda.cancel('job-12.1.0');

    expect(lambda.isCancelled('job-12.1.0')).toBe(true);
    expect(lambda.isCancelled('job-12.2.0')).toBe(false);
    expect(fake.sent).toHaveLength(0);
  });

  it('close destroys the client', async () => {
    const fake = fakeClient();
    await invoker(fake).close();
    expect(fake.destroyed).toBe(true);
  });
});

describe('AwsLambdaInvoker with its own client', () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
    // Dummy credentials for the SDK's default chain; moto accepts any. Never real ones here.
    for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
  });
  afterAll(async () => {
    await moto?.stop();
    vi.unstubAllEnvs();
  });

  it('sends to the configured endpoint and region', async () => {
    const lambda = new AwsLambdaInvoker({
      functions: FUNCTIONS,
      region: moto.region,
      endpoint: moto.endpoint,
    });
    try {
      await expect(lambda.invoke('ingest', 'job-12.1.0', ingestRequest)).rejects.toMatchObject({
        name: 'ResourceNotFoundException',
        message: expect.stringContaining('afluente-ingest'),
      });
    } finally {
      await lambda.close();
    }
  });
});

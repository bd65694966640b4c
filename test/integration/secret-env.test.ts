import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { HandlerError } from '../../lambdas/common/errors.ts';
import { handler } from '../../lambdas/ingest/handler.ts';
import { SECRET_ENV, withSecretEnv } from '../../lambdas/ingest/secret-env.ts';
import { demoConfig, readManifest, request, tempLake } from '../support/ingest.ts';
import { startMoto, type Moto } from '../support/moto.ts';

// On AWS the ingest Lambda reads a source's credentials from Secrets Manager by reference. Here moto's
// Secrets Manager (server mode, over HTTP) stands in; the demo API demands the bearer token.

let moto: Moto;
let client: SecretsManagerClient;
let api: DemoApi;
let tokenArn: string;
let jsonArn: string;
const TOKEN = 'demo-secret-token-0123456789';
const saved = { ...process.env };

beforeAll(async () => {
  moto = await startMoto();
  client = new SecretsManagerClient({
    endpoint: moto.endpoint,
    region: moto.region,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  tokenArn = (
    await client.send(new CreateSecretCommand({ Name: 'afluente/demo/token', SecretString: TOKEN }))
  ).ARN as string;
  jsonArn = (
    await client.send(
      new CreateSecretCommand({
        Name: 'afluente/demo/basic',
        SecretString: JSON.stringify({ username: 'ann', password: 'pw-1' }),
      }),
    )
  ).ARN as string;
  api = await startDemoApi({ port: 0, records: 25, pageSize: 10, token: TOKEN });
});
afterAll(async () => {
  process.env = saved;
  await api?.close();
  await moto?.stop();
});

describe('source secrets from Secrets Manager', () => {
  it('resolves plain and JSON-field references into the environment the ingest reads', async () => {
    const env = await withSecretEnv(
      {
        [SECRET_ENV]: JSON.stringify({ DEMO_TOKEN: tokenArn, DEMO_USER: `${jsonArn}#username` }),
        OTHER: 'x',
      },
      client,
    );
    expect(env).toMatchObject({ DEMO_TOKEN: TOKEN, DEMO_USER: 'ann', OTHER: 'x' });
  });

  it('names the variable and the secret, never a value, when a secret is missing or has no such field', async () => {
    const missing = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:afluente/nope-AbCdEf';
    const error = await withSecretEnv({ [SECRET_ENV]: JSON.stringify({ T: missing }) }, client).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(HandlerError);
    expect((error as HandlerError).toFailure()).toEqual({
      reason: 'missing_secret',
      message: `environment variable T: secret ${missing} could not be read (ResourceNotFoundException)`,
      retryable: false,
    });
    await expect(
      withSecretEnv({ [SECRET_ENV]: JSON.stringify({ T: `${jsonArn}#token` }) }, client),
    ).rejects.toThrow(`environment variable T: secret ${jsonArn} field "token" holds no value there`);
    await expect(withSecretEnv({ [SECRET_ENV]: '{"lower": 1}' }, client)).rejects.toThrow(
      `${SECRET_ENV} must be a JSON object of ENV_NAME: "secret ARN[#field]"`,
    );
  });

  it('lets the ingest handler pull a bearer-protected API with the token from Secrets Manager', async () => {
    // The handler builds its own client; the SDK's service-specific endpoint variable points it at moto.
    Object.assign(process.env, moto.env, {
      AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint,
      [SECRET_ENV]: JSON.stringify({ DEMO_TOKEN: tokenArn }),
    });
    const lake = await tempLake();
    const config = await demoConfig(`${api.url}/orders`, undefined, {
      auth: { kind: 'bearer', tokenEnv: 'DEMO_TOKEN' },
    });
    const result = await handler(request(config, lake));
    expect(result).toMatchObject({ kind: 'done', records: 25 });
    expect((await readManifest(lake)).records).toBe(25);
    expect(process.env.DEMO_TOKEN).toBeUndefined();
  });
});

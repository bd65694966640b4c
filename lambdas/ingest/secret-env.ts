import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { HandlerError } from '../common/errors.ts';

/**
 * On AWS a source's credentials live in Secrets Manager. The function's environment holds only references:
 * `AFLUENTE_SECRET_ENV` maps the environment variable names the source config uses (auth.tokenEnv, …) to a
 * secret ARN, optionally `#field` for one field of a JSON secret. The values are fetched here, into the
 * environment object the ingest reads, and never into the function's configuration or a log.
 */
export const SECRET_ENV = 'AFLUENTE_SECRET_ENV';

/** A warm container reuses values for a while, so a rotation is picked up without a fetch per invocation. */
const TTL_MS = 5 * 60_000;
const cache = new Map<string, { value: string; at: number }>();

export async function withSecretEnv(
  env: NodeJS.ProcessEnv,
  client: Pick<SecretsManagerClient, 'send'> = new SecretsManagerClient({}),
  now = Date.now(),
): Promise<NodeJS.ProcessEnv> {
  const raw = env[SECRET_ENV];
  if (!raw) return env;
  const references = parseReferences(raw);
  const resolved: NodeJS.ProcessEnv = { ...env };
  await Promise.all(
    Object.entries(references).map(async ([name, reference]) => {
      resolved[name] = await read(name, reference, client, now);
    }),
  );
  return resolved;
}

function parseReferences(raw: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  const valid =
    typeof parsed === 'object' &&
    parsed !== null &&
    Object.entries(parsed).every(([k, v]) => /^[A-Z_][A-Z0-9_]*$/.test(k) && typeof v === 'string');
  if (!valid) {
    throw new HandlerError({
      reason: 'bad_secret_env',
      message: `${SECRET_ENV} must be a JSON object of ENV_NAME: "secret ARN[#field]"`,
      retryable: false,
    });
  }
  return parsed as Record<string, string>;
}

async function read(
  name: string,
  reference: string,
  client: Pick<SecretsManagerClient, 'send'>,
  now: number,
): Promise<string> {
  const hit = cache.get(reference);
  if (hit && now - hit.at < TTL_MS) return hit.value;
  const [secretId = '', field] = reference.split('#');
  const fail = (why: string, retryable: boolean): HandlerError =>
    new HandlerError({
      reason: 'missing_secret',
      message: `environment variable ${name}: secret ${secretId}${field ? ` field "${field}"` : ''} ${why}`,
      retryable,
    });
  let secret: string | undefined;
  try {
    ({ SecretString: secret } = await client.send(new GetSecretValueCommand({ SecretId: secretId })));
  } catch (error) {
    const code = (error as { name?: string }).name ?? 'Error';
    // A missing secret or a denied read will not fix itself; a throttle or a network error may.
    const permanent = ['ResourceNotFoundException', 'AccessDeniedException', 'DecryptionFailure'].includes(
      code,
    );
    throw fail(`could not be read (${code})`, !permanent);
  }
  if (secret === undefined) throw fail('has no string value', false);
  let value: unknown = secret;
  if (field) {
    try {
      value = (JSON.parse(secret) as Record<string, unknown>)[field];
    } catch {
      value = undefined;
    }
  }
  if (typeof value !== 'string' || value === '') throw fail('holds no value there', false);
  cache.set(reference, { value, at: now });
  return value;
}

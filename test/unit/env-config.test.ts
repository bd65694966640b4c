import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactUrl } from '../../service/config/env.ts';

const TOKENS = { AFLUENTE_API_TOKENS: 'ops=0123456789abcdef0123' };

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected loadConfig to throw');
}

describe('config from AFLUENTE_* variables', () => {
  it('defaults to the local services on this machine', () => {
    const config = loadConfig(TOKENS);
    expect(config.mysql.url).toBe('mysql://root@127.0.0.1:3306/afluente');
    expect(config.redis.url).toBe('redis://127.0.0.1:6379');
    expect(config.http.port).toBe(8080);
    expect(config.lake.uri).toBe('file://./.data/lake');
    expect(config.sourcesFile).toBe('config/sources.yaml');
    expect([...config.roles]).toEqual(['api', 'scheduler', 'worker']);
    expect(config.auth.tokens).toEqual([{ label: 'ops', token: '0123456789abcdef0123' }]);
  });

  it('coerces and groups typed values', () => {
    const config = loadConfig({
      ...TOKENS,
      AFLUENTE_PORT: '9090',
      AFLUENTE_TRUST_PROXY: 'true',
      AFLUENTE_ROLES: 'worker',
    });
    expect(config.http.port).toBe(9090);
    expect(config.http.trustProxy).toBe(true);
    expect([...config.roles]).toEqual(['worker']);
  });

  it('names the variable, what it expects, and what it got', () => {
    const problems = problemsOf({ ...TOKENS, AFLUENTE_PORT: 'eighty' });
    expect(problems).toEqual(['AFLUENTE_PORT must be a TCP port from 1 to 65535 (got "eighty")']);
  });

  it('reports every bad variable at once', () => {
    const problems = problemsOf({
      ...TOKENS,
      AFLUENTE_MYSQL_URL: 'postgres://x/y',
      AFLUENTE_ROLES: 'api,cook',
      AFLUENTE_LOG_LEVEL: 'loud',
    });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toContain('AFLUENTE_MYSQL_URL must be a URL like mysql://');
    expect(problems.join('\n')).toContain(
      'AFLUENTE_ROLES must be a comma-separated subset of api, scheduler, worker (got "api,cook")',
    );
    expect(problems.join('\n')).toContain(
      'AFLUENTE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent',
    );
  });

  it('rejects an unknown AFLUENTE_ variable, so a typo is not silently ignored', () => {
    expect(problemsOf({ ...TOKENS, AFLUENTE_PROT: '1' })).toEqual([
      'AFLUENTE_PROT is not a known setting (check the spelling; see README "Configuration")',
    ]);
  });

  it('requires API tokens: auth is always on', () => {
    const [problem] = problemsOf({});
    expect(problem).toMatch(/^AFLUENTE_API_TOKENS must be set/);
  });

  it('rejects a short token without echoing it', () => {
    const problems = problemsOf({ AFLUENTE_API_TOKENS: 'ops=short-secret' });
    expect(problems).toEqual(['AFLUENTE_API_TOKENS entry 1 (ops) must be at least 16 characters long']);
    expect(problems.join()).not.toContain('short-secret');
  });

  it('lets tools that never serve the API run without tokens', () => {
    expect(loadConfig({}, { requireTokens: false }).auth.tokens).toEqual([]);
  });

  it('redacts passwords from URLs it logs', () => {
    expect(redactUrl('mysql://app:s3cret@db:3306/afluente')).toBe('mysql://app:***@db:3306/afluente');
  });

  it('picks the Lambda invoker: local by default, aws with its functions and events queue', () => {
    expect(loadConfig(TOKENS).lambda.invoker).toBe('local');
    const aws = loadConfig({
      ...TOKENS,
      AFLUENTE_LAMBDA_INVOKER: 'aws',
      AFLUENTE_LAMBDA_FUNCTIONS:
        'ingest=afluente-ingest,validate=arn:aws:lambda:eu-west-1:123456789012:function:afluente-validate',
      AFLUENTE_EVENTS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/afluente-events',
    });
    expect(aws.lambda).toMatchObject({
      invoker: 'aws',
      functions: {
        ingest: 'afluente-ingest',
        validate: 'arn:aws:lambda:eu-west-1:123456789012:function:afluente-validate',
      },
      eventsQueueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/afluente-events',
    });
    expect(
      problemsOf({ ...TOKENS, AFLUENTE_LAMBDA_INVOKER: 'aws', AFLUENTE_LAMBDA_FUNCTIONS: 'ingest=f' }),
    ).toEqual([
      'AFLUENTE_LAMBDA_FUNCTIONS must name the validate function when AFLUENTE_LAMBDA_INVOKER=aws (e.g. validate=afluente-validate)',
      'AFLUENTE_EVENTS_QUEUE_URL must be set when AFLUENTE_LAMBDA_INVOKER=aws',
    ]);
  });
});

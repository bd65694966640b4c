import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../service/observability/logger.ts';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('the logger', () => {
  it('redacts the authorization header and secret-looking fields wherever they appear', () => {
    const { stream, lines } = capture();
    const logger = createLogger('info', stream);
    logger.info({ req: { headers: { authorization: 'Bearer s3cret-token', host: 'x' } } }, 'request');
    logger.info(
      { source: { auth: { token: 'tok', password: 'pw' } }, headers: { authorization: 'Basic abc' } },
      'config',
    );
    const [first, second] = lines();
    expect(first).toMatchObject({
      req: { headers: { authorization: '[redacted]', host: 'x' } },
      service: 'afluente',
    });
    expect(second).toMatchObject({
      source: { auth: { token: '[redacted]', password: '[redacted]' } },
      headers: { authorization: '[redacted]' },
    });
    expect(JSON.stringify(lines())).not.toMatch(/s3cret|tok"|pw"|abc/);
  });
});

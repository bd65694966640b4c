import { describe, expect, it } from 'vitest';
import { IDENTIFIER_PATTERN } from '../../contract/source-config.ts';
import { parseAuthSpec } from '../../cli/scaffold/auth-spec.ts';
import { guessType } from '../../cli/scaffold/column-type.ts';
import { detectPagination } from '../../cli/scaffold/detect-pagination.ts';
import { mapReason } from '../../cli/scaffold/maps.ts';
import { identifier, NameSet, singular } from '../../cli/scaffold/names.ts';
import { profileRecords, type Profile } from '../../cli/scaffold/profile.ts';
import { inferTables } from '../../cli/scaffold/tables.ts';

// The pure parts of `afluente sources init`: names, types, maps, keys. The command itself, against real HTTP
// servers, is in test/cli/scaffold.test.ts.

const field = (records: unknown[], name: string): Profile => {
  const profile = profileRecords(records).fields.get(name);
  if (!profile) throw new Error(`no field ${name}`);
  return profile;
};
const values = (...list: unknown[]): Profile =>
  field(
    list.map((v) => ({ v })),
    'v',
  );

describe('identifiers', () => {
  it.each([
    ['createdAt', 'created_at'],
    ['HTTPStatus', 'http_status'],
    ['2024', '_2024'],
    ['a-b c', 'a_b_c'],
    ['Prénom', 'prenom'],
    ['_links', 'links'],
    ['', 'field'],
    ['x'.repeat(80), 'x'.repeat(63)],
  ])('%j becomes %j, which the config accepts', (text, expected) => {
    expect(identifier(text)).toBe(expected);
    expect(identifier(text)).toMatch(new RegExp(IDENTIFIER_PATTERN));
  });

  it('keeps names apart within 63 characters', () => {
    const names = new NameSet(['_extra']);
    const long = 'y'.repeat(63);
    expect([names.claim('id'), names.claim('id'), names.claim(long), names.claim(long)]).toEqual([
      'id',
      'id_2',
      long,
      `${'y'.repeat(61)}_2`,
    ]);
  });

  it('makes a parent-key column name from the table name', () => {
    expect(['orders', 'categories', 'boxes', 'status', 'analysis', 'data'].map(singular)).toEqual([
      'order',
      'category',
      'box',
      'status',
      'analysis',
      'data',
    ]);
  });
});

describe('column types', () => {
  it.each([
    [[1, 2, null], 'bigint'],
    [[1.5, 2.25, 3], 'decimal(18,2)'],
    [[0.1234, 1], 'decimal(18,4)'],
    [[0.12345, 1], 'double'],
    [[1e-7], 'double'],
    [[true, false], 'boolean'],
    [['2026-01-01T00:00:00Z', '2026-01-01T00:00:00.123+02:00'], 'timestamp'],
    [['2026-01-01', '2026-12-31'], 'date'],
    [['2026-01-01T00:00:00'], 'string'],
    [['2026-01-01', '2026-01-01T00:00:00Z'], 'string'],
    [['abc'], 'string'],
    [[null, null], 'string'],
    [[1, 'a'], 'json'],
    [[2 ** 60], 'decimal(38,0)'],
  ])('%j → %s', (list, type) => {
    expect(guessType(values(...list)).type).toBe(type);
  });
});

describe('maps', () => {
  it('tells a map from a nested record', () => {
    const nested = field(
      [{ o: { city: 'a', country: 'b' } }, { o: { city: 'c', country: 'd' } }, { o: { city: 'e' } }],
      'o',
    );
    expect(mapReason(nested)).toBeUndefined();
    expect(mapReason(field([{ o: { USD: 1, EUR: 2 } }], 'o'))).toMatch(/keys look like data/);
    expect(mapReason(field([{ o: { id: 1, ip: 'x' } }], 'o'))).toBeUndefined();
    expect(mapReason(field([{ o: { en: 'a', pt: 'b', de: 'c' } }], 'o'))).toMatch(/keys look like data/);
    expect(mapReason(field([{ o: { 'a b': 1 } }], 'o'))).toMatch(/are not field names/);
    const wide = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
    expect(mapReason(field([{ o: wide }], 'o'))).toMatch(/50 different keys/);
    const varying = Array.from({ length: 6 }, (_, i) => ({ o: { [`key${i}`]: i, [`other${i}`]: 'x' } }));
    expect(mapReason(field(varying, 'o'))).toMatch(/vary between records/);
  });
});

describe('keys', () => {
  it('prefers id, then a pair when no one field is unique, else says it is a placeholder', () => {
    const byId = inferTables(
      [
        { name: 'a', id: 1 },
        { name: 'b', id: 2 },
      ],
      't',
    );
    expect(byId.tables[0]?.key).toEqual(['id']);
    expect(byId.tables[0]?.keyNote).toContain('also unique there: name');

    const pair = inferTables(
      [
        { store_id: 1, day: '2026-01-01', n: 1 },
        { store_id: 1, day: '2026-01-02', n: 1 },
        { store_id: 2, day: '2026-01-01', n: 1 },
      ],
      't',
    );
    expect(pair.tables[0]?.key).toEqual(['store_id', 'day']);

    const none = inferTables(
      [
        { a: 1, b: 1 },
        { a: 1, b: 1 },
      ],
      't',
    );
    expect(none.tables[0]?.keyNote).toMatch(/^PLACEHOLDER/);
  });

  it('a child key column never clashes with an element field of the same name', () => {
    const { tables } = inferTables(
      [
        {
          id: 1,
          items: [
            { order_id: 9, position: 1 },
            { order_id: 9, position: 1 },
          ],
        },
        { id: 2, items: [{ order_id: 9, position: 1 }] },
      ],
      'orders',
    );
    expect(tables[1]).toMatchObject({
      parentKey: { order_id: 'id' },
      index: 'position_2',
      key: ['order_id', 'position_2'],
    });
    expect(tables[1]?.columns.map((c) => [c.name, c.path])).toEqual([
      ['order_id_2', 'order_id'],
      ['position', 'position'],
    ]);
  });
});

describe('--auth', () => {
  it('reads every form into the config shape', () => {
    expect(parseAuthSpec('bearer:T')).toEqual({ kind: 'bearer', tokenEnv: 'T' });
    expect(parseAuthSpec('apiKey:header:X-Api-Key:K')).toEqual({
      kind: 'apiKey',
      in: 'header',
      name: 'X-Api-Key',
      valueEnv: 'K',
    });
    expect(parseAuthSpec('basic:U:P')).toEqual({ kind: 'basic', usernameEnv: 'U', passwordEnv: 'P' });
    expect(() => parseAuthSpec('apiKey:cookie:x:K')).toThrow(/apiKey:header/);
    expect(() => parseAuthSpec('s3cret')).toThrow(/must be one of/);
    expect(() => parseAuthSpec('s3cret')).not.toThrow(/s3cret/);
  });
});

describe('pagination candidates', () => {
  const page = (body: unknown, headers: Record<string, string> = {}) => ({
    body,
    headers,
    url: new URL('https://api.example.com/v1/things'),
  });
  const request = new URL('https://api.example.com/v1/things');
  const kinds = (body: unknown, headers: Record<string, string> = {}): unknown[] =>
    detectPagination(page(body, headers), request, 'data', 2).candidates.map((c) => c.pagination);

  it('reads a date-valued next_* field as no token, and finds the offset shape', () => {
    expect(
      kinds({ data: [{}, {}], next_billing_date: '2026-05-01', offset: 0, limit: 2, total: 10 }),
    ).toEqual([{ kind: 'offset', offsetParam: 'offset', limitParam: 'limit', size: 2, maxPages: 100_000 }]);
  });

  it('puts a Link header first, and takes a total alone as offset or page, both to be tried', () => {
    expect(
      kinds({ data: [{}, {}] }, { link: '<https://api.example.com/v1/things?page=2>; rel="next"' }),
    ).toEqual([{ kind: 'link', maxPages: 100_000 }]);
    expect(kinds({ data: [{}, {}], total: 9 }).map((p) => (p as { kind: string }).kind)).toEqual([
      'offset',
      'page',
    ]);
  });

  it('a next URL with two moving parameters cannot be followed and says nextPath comes later', () => {
    const detection = detectPagination(
      page({ data: [{}, {}], next: 'https://api.example.com/v1/things?page=2&sig=abc' }),
      request,
      'data',
      2,
    );
    expect(detection.candidates).toEqual([]);
    expect(detection.hints.join()).toMatch(/differs from the request in page, sig.*nextPath/);
  });
});

import { describe, expect, it } from 'vitest';
import { compileTransform } from '../../lambdas/validate/transforms.ts';

const schema = {
  type: 'object',
  properties: {
    total: { type: 'number' },
    qty: { type: ['integer', 'null'] },
    note: { type: 'string' },
    updated_at: { type: 'string', format: 'date-time' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: { price: { type: 'number' }, at: { type: 'string', format: 'date-time' } },
      },
    },
  },
};

describe('validate transforms', () => {
  it('normalizes date-time values to UTC ISO-8601, at any depth', () => {
    const t = compileTransform(schema, { trimStrings: false, timestampsToUtc: true, coerceNumbers: false });
    expect(
      t({
        updated_at: '2026-01-31T12:00:00+02:00',
        items: [{ at: '2026-01-31T00:00:00-01:30' }],
        note: '2026-01-31T12:00:00+02:00',
      }),
    ).toEqual({
      updated_at: '2026-01-31T10:00:00.000Z',
      items: [{ at: '2026-01-31T01:30:00.000Z' }],
      note: '2026-01-31T12:00:00+02:00',
    });
    expect(t({ updated_at: 'not a date' })).toEqual({ updated_at: 'not a date' });
  });

  it('coerces numeric strings only where the schema wants a number, and only when asked', () => {
    const on = compileTransform(schema, { trimStrings: false, timestampsToUtc: false, coerceNumbers: true });
    expect(on({ total: '12.50', qty: ' 3 ', note: '42', items: [{ price: '1e3' }] })).toEqual({
      total: 12.5,
      qty: 3,
      note: '42',
      items: [{ price: 1000 }],
    });
    expect(on({ total: '12,50', qty: 'three' })).toEqual({ total: '12,50', qty: 'three' });
    const off = compileTransform(schema, {
      trimStrings: false,
      timestampsToUtc: false,
      coerceNumbers: false,
    });
    expect(off({ total: '12.50' })).toEqual({ total: '12.50' });
  });

  it('trims every string when asked', () => {
    const t = compileTransform(schema, { trimStrings: true, timestampsToUtc: false, coerceNumbers: false });
    expect(t({ note: '  hi ', extra: { deep: [' x '] } })).toEqual({ note: 'hi', extra: { deep: ['x'] } });
  });
});

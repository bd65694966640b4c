/**
 * The larger of two incremental cursor values. Numbers compare as numbers and timestamps as instants (so
 * `…+01:00` and `…Z` order correctly); anything else compares as text.
 */
export function laterCursor(current: string | null, value: unknown): string | null {
  if (value === null || value === undefined || value === '') return current;
  // A cursor is a scalar; anything else is kept as its JSON so it still compares consistently.
  const candidate =
    typeof value === 'string'
      ? value
      : typeof value === 'object'
        ? JSON.stringify(value)
        : `${value as number | boolean}`;
  if (current === null) return candidate;
  return compare(candidate, current) > 0 ? candidate : current;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function compare(a: string, b: string): number {
  // The common case, UTC timestamps of one shape, orders as text without parsing a date per record.
  if (a.length === b.length && ISO_UTC.test(a) && ISO_UTC.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  const na = Number(a);
  const nb = Number(b);
  if (a.trim() !== '' && b.trim() !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (!Number.isNaN(ta) && !Number.isNaN(tb) && ta !== tb) return ta - tb;
  return a < b ? -1 : a > b ? 1 : 0;
}

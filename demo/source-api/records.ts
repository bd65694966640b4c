// Generated `orders` for the demo source API. A record is a pure function of (seed, index), so any page can be
// built on its own without materialising the dataset, and every run, test and benchmark sees the same data.

export type OrderStatus = 'new' | 'paid' | 'shipped' | 'cancelled';

export interface OrderItem {
  line: number;
  sku: string;
  quantity: number;
  unit_price: number;
}

export interface Order {
  id: number;
  status: OrderStatus;
  total: number;
  currency: string;
  created_at: string;
  updated_at: string;
  customer: {
    id: number;
    name: string;
    email: string;
    address: { city: string; country: string };
  };
  items: OrderItem[];
  tags: string[];
}

/** The first record's `updated_at` unless the server is given another `baseTime`. */
export const DEFAULT_BASE_TIME = '2026-01-01T00:00:00.000Z';
const DEFAULT_BASE_MS = Date.parse(DEFAULT_BASE_TIME);

const STATUSES: readonly OrderStatus[] = [
  'new',
  'paid',
  'paid',
  'shipped',
  'shipped',
  'shipped',
  'cancelled',
];
// [display name, ASCII handle]: the handle keeps emails valid for the schema's `email` format.
const FIRST: readonly (readonly [string, string])[] = [
  ['Ana', 'ana'],
  ['João', 'joao'],
  ['Zoë', 'zoe'],
  ['Søren', 'soren'],
  ['Łukasz', 'lukasz'],
  ['Amélie', 'amelie'],
  ['Jürgen', 'jurgen'],
  ['Siobhán', 'siobhan'],
  ['Mei', 'mei'],
  ['Ngozi', 'ngozi'],
  ['Priya', 'priya'],
  ['Hiroshi', 'hiroshi'],
  ['Olga', 'olga'],
  ['Mohammed', 'mohammed'],
  ['Émile', 'emile'],
  ['Björk', 'bjork'],
];
const LAST: readonly (readonly [string, string])[] = [
  ['Silva', 'silva'],
  ['Müller', 'muller'],
  ['Nowak', 'nowak'],
  ["O'Brien", 'obrien'],
  ['García', 'garcia'],
  ['Smith', 'smith'],
  ['Dubois', 'dubois'],
  ['王', 'wang'],
  ['李', 'li'],
  ['Jensen', 'jensen'],
  ['Ivanova', 'ivanova'],
  ['Okafor', 'okafor'],
  ['山田', 'yamada'],
  ['Núñez', 'nunez'],
];
// [city, country, currency]
const PLACES: readonly (readonly [string, string, string])[] = [
  ['São Paulo', 'BR', 'BRL'],
  ['Rio de Janeiro', 'BR', 'BRL'],
  ['北京', 'CN', 'CNY'],
  ['上海', 'CN', 'CNY'],
  ['東京', 'JP', 'JPY'],
  ['München', 'DE', 'EUR'],
  ['Berlin', 'DE', 'EUR'],
  ['Zürich', 'CH', 'CHF'],
  ['Kraków', 'PL', 'PLN'],
  ['Lisboa', 'PT', 'EUR'],
  ['Reykjavík', 'IS', 'ISK'],
  ['Montréal', 'CA', 'CAD'],
  ['New York', 'US', 'USD'],
  ['Austin', 'US', 'USD'],
  ['Lagos', 'NG', 'NGN'],
  ['Göteborg', 'SE', 'SEK'],
  ['Ciudad de México', 'MX', 'MXN'],
  ['Mumbai', 'IN', 'INR'],
];
const TAGS: readonly string[] = ['gift', 'priority', 'b2b', 'fragile', 'express', 'promo', 'café', '返品'];

/**
 * A string's UTF-8 bytes, one latin1 character each. JSON.stringify leaves characters ≥ 0x80 alone, so a page
 * built from wire records (see {@link wireOrderAt}), stringified and written as latin1, is byte for byte the
 * UTF-8 JSON of the real records. It keeps V8 on one-byte strings: one CJK name turns a whole page two-byte,
 * and stringifying plus encoding it took ~1.5× as long, which a 1M-record benchmark of the client would measure.
 */
export function toWire(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}
const WIRE_TAGS: readonly string[] = TAGS.map(toWire);

// Above 2^31 on purpose, so a pipeline that maps customer ids to a 32-bit int breaks visibly.
const CUSTOMER_ID_BASE = 2_147_483_648;
const CUSTOMERS = 50_000;

/** A 32-bit hash of (seed, n); adjacent indexes give unrelated streams. */
function mix(seed: number, n: number): number {
  let h =
    Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ (n >>> 0) ^ Math.imul((n / 0x1_0000_0000) | 0, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

// mulberry32 (tiny, fast, good enough for test data) over module state: a record is built synchronously, and
// a closure per record was measurable at a million records.
let prng = 0;

/** The next integer in [0, n) from the current record's stream. */
function int(n: number): number {
  prng = (prng + 0x6d2b79f5) | 0;
  let t = Math.imul(prng ^ (prng >>> 15), 1 | prng);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return Math.floor((((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000) * n);
}

const DAY_MS = 86_400_000;
const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const TWO = Array.from({ length: 60 }, (_, i) => pad(i, 2));
const THREE = Array.from({ length: 1000 }, (_, i) => pad(i, 3));
// Bounded caches: day prefixes (dropped past 1000 days), one time suffix per second of a day.
const dayPrefixes = new Map<number, string>();
const timeSuffixes: (string | undefined)[] = new Array<string | undefined>(86_400).fill(undefined);

/**
 * `Date#toISOString`, several times faster: it was most of a record's cost. The result joins two cached strings,
 * which JSON.stringify flattens cheaply, unlike a string concatenated from eight pieces.
 */
export function isoString(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  let prefix = dayPrefixes.get(day);
  if (prefix === undefined) {
    const iso = new Date(day * DAY_MS).toISOString();
    prefix = iso.slice(0, iso.indexOf('T') + 1);
    if (dayPrefixes.size >= 1000) dayPrefixes.clear();
    dayPrefixes.set(day, prefix);
  }
  const msOfDay = ms - day * DAY_MS;
  const second = Math.floor(msOfDay / 1000);
  const milli = msOfDay - second * 1000;
  let suffix = milli === 0 ? timeSuffixes[second] : undefined;
  if (suffix === undefined) {
    const h = Math.floor(second / 3600);
    const m = Math.floor(second / 60) % 60;
    suffix = `${TWO[h]}:${TWO[m]}:${TWO[second % 60]}.${THREE[milli]}Z`;
    if (milli === 0) timeSuffixes[second] = suffix;
  }
  return prefix + suffix;
}

interface Customer {
  id: number;
  name: string;
  wireName: string;
  email: string;
  city: string;
  wireCity: string;
  country: string;
  currency: string;
}
// Customers per seed, built on first use: orders share them, and so share their (already flattened) strings.
const customersBySeed = new Map<number, (Customer | undefined)[]>();

function customer(seed: number, no: number): Customer {
  let customers = customersBySeed.get(seed);
  if (customers === undefined) {
    if (customersBySeed.size >= 8) customersBySeed.clear();
    customers = new Array<Customer | undefined>(CUSTOMERS).fill(undefined);
    customersBySeed.set(seed, customers);
  }
  let found = customers[no];
  if (found === undefined) {
    const h = mix(seed ^ 0x5bd1e995, no);
    const first = FIRST[h % FIRST.length]!;
    const last = LAST[(h >>> 8) % LAST.length]!;
    const place = PLACES[(h >>> 16) % PLACES.length]!;
    const name = `${first[0]} ${last[0]}`;
    found = {
      id: CUSTOMER_ID_BASE + no,
      name,
      wireName: toWire(name),
      email: `${first[1]}.${last[1]}.${no}@example.com`,
      city: place[0],
      wireCity: toWire(place[0]),
      country: place[1],
      currency: place[2],
    };
    customers[no] = found;
  }
  return found;
}

let lastUpdated = { ms: NaN, iso: '' };

// Most orders have one or two lines: 40 % one, 30 % two, 15 % three, 10 % four, 5 % five.
const LINE_COUNTS = [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5];

/**
 * The `updated_at` of the record at `index`, in epoch ms: whole seconds, 2 or 3 records per second, never
 * decreasing with the index, so (updated_at, id) order is index order and `updated_since` is a range start.
 */
export function updatedAtMs(index: number, baseMs = DEFAULT_BASE_MS): number {
  return baseMs + Math.floor((index * 2) / 5) * 1000;
}

/** The first index in [0, count) whose `updated_at` is at or after `sinceMs`, or `count` if there is none. */
export function firstIndexSince(sinceMs: number, count: number, baseMs = DEFAULT_BASE_MS): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (updatedAtMs(mid, baseMs) >= sinceMs) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The order at 0-based position `index`; the same (index, seed, baseMs) always gives the same record. */
export function orderAt(index: number, seed: number, baseMs = DEFAULT_BASE_MS): Order {
  return build(index, seed, baseMs, false);
}

/** {@link orderAt} with its strings in wire form ({@link toWire}), for serializing pages fast. */
export function wireOrderAt(index: number, seed: number, baseMs = DEFAULT_BASE_MS): Order {
  return build(index, seed, baseMs, true);
}

function build(index: number, seed: number, baseMs: number, wire: boolean): Order {
  prng = mix(seed, index);

  // Customers repeat across orders and keep their name and place, as a real customer table would.
  const c = customer(seed, int(CUSTOMERS));

  const big = int(50) === 0; // ~2%: bulk orders with large quantities and prices
  const count = LINE_COUNTS[int(LINE_COUNTS.length)]!;
  const items: OrderItem[] = [];
  let totalCents = 0;
  for (let line = 1; line <= count; line++) {
    const quantity = big ? 100 + int(9_901) : 1 + int(5);
    const cents = big ? 1 + int(9_999_999) : int(100) === 0 ? 0 : 99 + int(20_000);
    totalCents += quantity * cents;
    items.push({ line, sku: `SKU-${10_000 + int(90_000)}`, quantity, unit_price: cents / 100 });
  }

  const tags: string[] = [];
  for (let n = int(4); tags.length < n;) {
    const tag = (wire ? WIRE_TAGS : TAGS)[int(TAGS.length)]!;
    if (!tags.includes(tag)) tags.push(tag);
  }

  // Neighbours share an updated_at: reusing the string saves building and flattening it again.
  const updated = updatedAtMs(index, baseMs);
  if (updated !== lastUpdated.ms) lastUpdated = { ms: updated, iso: isoString(updated) };
  return {
    id: index + 1,
    status: STATUSES[int(STATUSES.length)]!,
    total: totalCents / 100,
    currency: c.currency,
    created_at: isoString(updated - int(30 * 86_400) * 1000),
    updated_at: lastUpdated.iso,
    customer: {
      id: c.id,
      name: wire ? c.wireName : c.name,
      email: c.email,
      address: { city: wire ? c.wireCity : c.city, country: c.country },
    },
    items,
    tags,
  };
}

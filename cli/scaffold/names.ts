// Table and column names for a proposal: every name must pass the config's IDENTIFIER_PATTERN, so record
// fields (camelCase, dashes, digits first, long) are turned into lowercase snake_case and kept apart.
import { IDENTIFIER_PATTERN } from '../../contract/source-config.ts';

const IDENTIFIER = new RegExp(IDENTIFIER_PATTERN);
const MAX_LENGTH = 63;

/** `createdAt` → `created_at`, `HTTPStatus` → `http_status`, `2024` → `_2024`, `a-b c` → `a_b_c`. */
export function identifier(text: string, fallback = 'field'): string {
  const snake = text
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^_(?=[a-z])|_$/g, '');
  const named = snake === '' || snake === '_' ? fallback : snake;
  const safe = /^[0-9]/.test(named) ? `_${named}` : named;
  return safe.slice(0, MAX_LENGTH);
}

/** Hands out names that are unique within one table (or among the tables), adding `_2`, `_3`… on a clash. */
export class NameSet {
  private readonly taken = new Set<string>();

  constructor(reserved: Iterable<string> = []) {
    for (const name of reserved) this.taken.add(name);
  }

  has(name: string): boolean {
    return this.taken.has(name);
  }

  /** A free name for `wanted` (already an identifier), now taken. */
  claim(wanted: string): string {
    let name = wanted;
    for (let n = 2; this.taken.has(name); n++) {
      const suffix = `_${n}`;
      name = `${wanted.slice(0, MAX_LENGTH - suffix.length)}${suffix}`;
    }
    if (!IDENTIFIER.test(name)) throw new Error(`bug: "${name}" is not an identifier`);
    this.taken.add(name);
    return name;
  }
}

/** `orders` → `order`, `categories` → `category`, `boxes` → `box`: for a child's parent-key column name. */
export function singular(name: string): string {
  if (/ies$/.test(name) && name.length > 4) return `${name.slice(0, -3)}y`;
  if (/(ss|sh|ch|x)es$/.test(name)) return name.slice(0, -2);
  if (/[^su]s$/.test(name) && !/is$/.test(name) && name.length > 3) return name.slice(0, -1);
  return name;
}

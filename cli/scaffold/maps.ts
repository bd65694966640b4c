// Whether an object field is a record's structure (its keys are field names, the same in every record) or a
// map whose keys are data (currency codes, dates, ids): a map becomes one json column, not a column per key.
import type { Profile } from './profile.ts';

/** More keys than this at one place reads as data, not as a record's fields. */
export const MANY_KEYS = 40;
const CODE_LIKE = [
  /^-?\d+(\.\d+)?$/, // ids, years, numeric codes
  /^\d{4}-\d{2}(-\d{2})?([Tt ].*)?$/, // dates, months
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, // uuids
  /^[A-Z][A-Z0-9]{1,5}$/, // currency, country, ticker codes
  /^[a-z]{2}[-_][A-Za-z]{2,4}$/, // language tags with a region: pt-BR, zh_Hant
];
// Bare language tags (en, pt) also spell short field names (id, ip, os): they count from three keys on.
const LANGUAGE = /^[a-z]{2}$/;
// Characters no field name needs: a key with them is a value (a URL, a label, an e-mail).
const DATA_CHARACTERS = /[\s.:/@#?=,;]|^$/;

const codeLike = (key: string): boolean => DATA_CHARACTERS.test(key) || CODE_LIKE.some((re) => re.test(key));

/** A rough shape of a value, to tell whether a map's values are all alike. */
function shape(p: Profile): string {
  const kinds = p.kinds().filter((k) => k !== 'integer' && k !== 'number');
  if (p.integers + p.fractions > 0) kinds.push('number');
  if (p.objects > 0) kinds.push(`{${[...p.fields.keys()].sort().join(',')}}`);
  return kinds.sort().join('|');
}

/** Why an object field is a map, or `undefined` when its keys look like field names. */
export function mapReason(p: Profile): string | undefined {
  const keys = [...p.fields.keys()];
  if (keys.length > MANY_KEYS) return `it had ${keys.length} different keys in the sample`;
  if (keys.some((k) => DATA_CHARACTERS.test(k)))
    return `keys such as ${JSON.stringify(keys.find((k) => DATA_CHARACTERS.test(k)))} are not field names`;
  // Keys that come and go: each key is in fewer than half of the objects, on average.
  const presence =
    keys.reduce((sum, key) => sum + (p.fields.get(key)?.seen ?? 0), 0) / (keys.length * p.objects);
  if (p.objects >= 3 && keys.length >= 4 && presence < 0.5)
    return `its keys vary between records (${keys.length} keys, each in ${Math.round(presence * 100)}% of them on average)`;
  const shapes = new Set([...p.fields.values()].map(shape));
  const coded =
    keys.every(codeLike) || (keys.length >= 3 && keys.every((k) => codeLike(k) || LANGUAGE.test(k)));
  if (keys.length >= 2 && coded && shapes.size === 1)
    return `its keys look like data (${keys.slice(0, 3).join(', ')}${keys.length > 3 ? ', …' : ''}) with values of one shape`;
  return undefined;
}

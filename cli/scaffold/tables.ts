// Tables for the sampled records: a parent table of the records' scalar fields (nested objects flattened),
// a child table per array of objects or of scalars, json columns for maps and for what has no fixed shape,
// key candidates, and an update-time field for `incremental`. Every choice that is a guess carries a note,
// which render.ts prints as a comment next to it.
import { ELEMENT_COLUMN, ELEMENT_PATH, type ColumnType } from '../../contract/source-config.ts';
import { getPath } from '../../lambdas/common/json-path.ts';
import { guessType } from './column-type.ts';
import { mapReason } from './maps.ts';
import { identifier, NameSet, singular } from './names.ts';
import { profileRecords, type Profile } from './profile.ts';

export interface ColumnDraft {
  name: string;
  /** Dot path in the record (parent) or the array element (child); `.` is the element itself. */
  path: string;
  type: ColumnType;
  note?: string;
}

export interface TableDraft {
  name: string;
  from?: string;
  parentKey?: Record<string, string>;
  index?: string;
  key: string[];
  keyNote?: string;
  columns: ColumnDraft[];
  /** Said above the table. */
  note?: string;
}

export interface Inference {
  tables: TableDraft[];
  /** A field that looks like the record's update time, for an `incremental` cursor. */
  incremental?: { cursorField: string; note: string };
  /** Things the proposal leaves out, said above the tables. */
  notes: string[];
}

/** The records cannot make a table (every field is an array, say). */
export class InferenceError extends Error {}

/** The column the config's `unknownFields: keep` (the default) adds to every table. */
const EXTRA_COLUMN = '_extra';
const INDEX_COLUMN = 'position';
/** Types a key column may have: exact, and not free text the length of a page. */
const KEY_TYPES = /^(bigint|string|date|timestamp|decimal\(\d+,0\))$/;
const UPDATE_TIME =
  /^(updated|modified|changed|last_?(updated|modified|changed|update|modification)(_?(at|on|time|date))?|(updated|modified|changed|update|modify|modification)_?(at|on|time|date|datetime|timestamp)|date_?(updated|modified|changed)|mtime|lastmod)$/i;
// A dot path can only spell keys without dots or white space (FIELD_PATH_PATTERN).
const PATH_SEGMENT = /^[^.\s]+$/;

/** One place in a record or element, classified. */
type Leaf =
  | { kind: 'scalar'; path: string[]; profile: Profile }
  | { kind: 'json'; path: string[]; profile: Profile; note: string }
  | { kind: 'objects'; path: string[]; profile: Profile; element: Profile }
  | { kind: 'scalars'; path: string[]; profile: Profile; element: Profile };

function leaves(object: Profile, prefix: string[], inElement: boolean, skipped: string[]): Leaf[] {
  const out: Leaf[] = [];
  for (const [key, profile] of object.fields) {
    const path = [...prefix, key];
    if (!PATH_SEGMENT.test(key)) {
      skipped.push(
        `${JSON.stringify([...prefix, key].join('.'))} has a dot or a space in its name, which a column path cannot spell`,
      );
      continue;
    }
    out.push(...classify(profile, path, inElement, skipped));
  }
  return out;
}

function classify(profile: Profile, path: string[], inElement: boolean, skipped: string[]): Leaf[] {
  const kinds = profile.kinds();
  if (kinds.length === 1 && kinds[0] === 'object') {
    if (profile.fields.size === 0)
      return [
        { kind: 'json', path, profile, note: 'always {} in the sample: json until its shape is known' },
      ];
    const reason = mapReason(profile);
    if (reason) return [{ kind: 'json', path, profile, note: `a map, kept as json: ${reason}` }];
    return leaves(profile, path, inElement, skipped);
  }
  if (kinds.length === 1 && kinds[0] === 'array') {
    const element = profile.element;
    const elementKinds = element?.kinds() ?? [];
    if (element === undefined || profile.nonEmptyArrays === 0)
      return [
        {
          kind: 'json',
          path,
          profile,
          note: 'always an empty array in the sample: json until its elements are known',
        },
      ];
    if (inElement)
      return [
        {
          kind: 'json',
          path,
          profile,
          note: 'an array inside an array element: kept as json (a child of a child table is not supported)',
        },
      ];
    if (element.nulls > 0 && elementKinds.length === 0)
      return [{ kind: 'json', path, profile, note: 'an array of nulls in the sample: json' }];
    if (elementKinds.length === 1 && elementKinds[0] === 'object') {
      if (mapReason(element) === undefined && element.fields.size > 0)
        return [{ kind: 'objects', path, profile, element }];
      return [{ kind: 'json', path, profile, note: 'an array of objects with no fixed fields: json' }];
    }
    if (elementKinds.length === 1 && elementKinds[0] === 'array')
      return [{ kind: 'json', path, profile, note: 'an array of arrays: json' }];
    if (elementKinds.some((k) => k === 'object' || k === 'array'))
      return [
        {
          kind: 'json',
          path,
          profile,
          note: `an array of mixed elements (${elementKinds.join(', ')}): json`,
        },
      ];
    return [{ kind: 'scalars', path, profile, element }];
  }
  if (kinds.includes('object') || kinds.includes('array'))
    return [
      {
        kind: 'json',
        path,
        profile,
        note: `mixed types in the sample (${kinds.join(', ')}): json keeps each value as it came`,
      },
    ];
  return [{ kind: 'scalar', path, profile }];
}

function column(leaf: Leaf, names: NameSet, prefixLength = 0): ColumnDraft {
  const relative = leaf.path.slice(prefixLength);
  const name = names.claim(identifier(relative.join('_')));
  const path = relative.join('.');
  if (leaf.kind === 'scalar') {
    const guess = guessType(leaf.profile);
    return { name, path, type: guess.type, ...(guess.note ? { note: guess.note } : {}) };
  }
  return { name, path, type: 'json', ...(leaf.kind === 'json' ? { note: leaf.note } : {}) };
}

/** How likely a column is the key, by its name: lower is better. */
function keyRank(column: ColumnDraft, nested: boolean): number {
  const raw = column.path.split('.').at(-1) ?? '';
  const last = raw.toLowerCase();
  if (nested) return 5;
  if (last === 'id') return 0;
  if (last === 'uuid' || last === 'guid') return 1;
  if (/[_-](id|uuid|guid|key)$/.test(last) || /[a-z](Id|ID|Uuid|UUID|Key)$/.test(raw)) return 2;
  if (/^(line|line_?(no|number|num)|position|pos|seq|sequence|index|idx|number|no|num|key|code)$/.test(last))
    return 3;
  return column.type === 'timestamp' || column.type === 'date' ? 6 : 4;
}

interface KeyChoice {
  key: string[];
  note: string;
}

/** The parent key: a column never null and unique across the sample, by name preference; else a pair. */
function parentKey(
  columns: ColumnDraft[],
  profiles: Map<string, Profile>,
  records: readonly unknown[],
  count: number,
): KeyChoice {
  const sampled = `${count} sampled record${count === 1 ? '' : 's'}`;
  const complete = columns.filter((c) => {
    const p = profiles.get(c.name);
    return p !== undefined && KEY_TYPES.test(c.type) && p.seen === count && p.nulls === 0;
  });
  const ranked = complete
    .map((c, order) => ({ c, order, rank: keyRank(c, c.path.includes('.')) }))
    .sort((a, b) => a.rank - b.rank || a.order - b.order);
  const unique = ranked.filter(({ c }) => profiles.get(c.name)?.unique === true);
  const [best, ...others] = unique;
  if (best !== undefined) {
    const rest = others.map(({ c }) => c.name).slice(0, 5);
    return {
      key: [best.c.name],
      note:
        `never null and unique in the ${sampled}` +
        (rest.length > 0 ? `; also unique there: ${rest.join(', ')}` : '; the only such field'),
    };
  }
  // No one field: the first pair, best names first, whose values together never repeat.
  const pool = ranked.slice(0, 8);
  for (let i = 0; i < pool.length; i++) {
    for (let j = i + 1; j < pool.length; j++) {
      const a = pool[i]?.c;
      const b = pool[j]?.c;
      if (a === undefined || b === undefined) continue;
      const seen = new Set<string>();
      const distinct = records.every((r) => {
        const k = JSON.stringify([getPath(r, a.path), getPath(r, b.path)]);
        return !seen.has(k) && seen.add(k);
      });
      if (distinct)
        return {
          key: [a.name, b.name],
          note: `no single field was unique in the ${sampled}; this pair was: check it is the real key`,
        };
    }
  }
  const fallback = ranked[0]?.c ?? columns[0];
  if (fallback === undefined) throw new Error('bug: a parent table without columns');
  return {
    key: [fallback.name],
    note:
      `PLACEHOLDER: no field or pair of fields was never null and unique in the ${sampled}; ` +
      'rows with the same key are merged into one, so set the real key',
  };
}

/** A child's element key: an id-like field unique within every sampled array, else the element's position. */
function elementKey(
  columns: ColumnDraft[],
  profiles: Map<string, Profile>,
  element: Profile,
): ColumnDraft | undefined {
  const count = element.seen - element.nulls;
  return columns
    .map((c, order) => ({ c, order, rank: keyRank(c, c.path.includes('.')), p: profiles.get(c.name) }))
    .filter(
      ({ c, rank, p }) =>
        p !== undefined &&
        KEY_TYPES.test(c.type) &&
        p.seen === count &&
        p.nulls === 0 &&
        p.unique &&
        // A field named id may be trusted on little evidence; a reference (product_id) or a line number needs
        // arrays of two or more where it did not repeat.
        (rank <= 1 || (rank <= 3 && p.compared)),
    )
    .sort((a, b) => a.rank - b.rank || a.order - b.order)[0]?.c;
}

export function inferTables(records: readonly Record<string, unknown>[], parentName: string): Inference {
  const root = profileRecords(records);
  const skipped: string[] = [];
  const notes: string[] = [];
  const found = leaves(root, [], false, skipped);
  const tableNames = new NameSet();
  const parent = tableNames.claim(parentName);

  const parentColumns = new NameSet([EXTRA_COLUMN]);
  const columns: ColumnDraft[] = [];
  const profiles = new Map<string, Profile>();
  const arrays: Leaf[] = [];
  for (const leaf of found) {
    if (leaf.kind === 'objects' || leaf.kind === 'scalars') {
      arrays.push(leaf);
      continue;
    }
    const c = column(leaf, parentColumns);
    columns.push(c);
    profiles.set(c.name, leaf.profile);
  }
  if (columns.length === 0)
    throw new InferenceError(
      'the records have no field to make a parent table of (every field is an array or left out); point --records at another array',
    );
  const key = parentKey(columns, profiles, records, records.length);
  const tables: TableDraft[] = [{ name: parent, key: key.key, keyNote: key.note, columns }];

  for (const leaf of arrays) {
    if (leaf.kind !== 'objects' && leaf.kind !== 'scalars') continue;
    const name = tableNames.claim(identifier(`${parent}_${leaf.path.join('_')}`));
    const from = leaf.path.join('.');
    const own = new NameSet([EXTRA_COLUMN]);
    const parentKeyMap: Record<string, string> = {};
    for (const k of key.key) {
      const prefix = `${singular(parent)}_`;
      parentKeyMap[own.claim(identifier(k.startsWith(prefix) ? k : `${prefix}${k}`))] = k;
    }
    const carried = Object.keys(parentKeyMap);
    if (leaf.kind === 'scalars') {
      const guess = guessType(leaf.element);
      const value = own.claim(ELEMENT_COLUMN);
      const index = own.claim(INDEX_COLUMN);
      tables.push({
        name,
        from,
        parentKey: parentKeyMap,
        index,
        key: [...carried, index],
        keyNote: `${index} is the element's place in the array`,
        columns: [
          { name: value, path: ELEMENT_PATH, type: guess.type, ...(guess.note ? { note: guess.note } : {}) },
        ],
        note: `one row per element of ${from} (an array of ${leaf.element.kinds().join(', ')})`,
      });
      continue;
    }
    const elementLeaves = leaves(leaf.element, [], true, skipped);
    const childColumns: ColumnDraft[] = [];
    const childProfiles = new Map<string, Profile>();
    for (const l of elementLeaves) {
      const c = column(l, own);
      childColumns.push(c);
      childProfiles.set(c.name, l.profile);
    }
    const unique = elementKey(childColumns, childProfiles, leaf.element);
    let index: string | undefined;
    let keyNote: string;
    if (unique) {
      keyNote = `${unique.name} was never null and unique within each sampled ${from} array`;
    } else {
      index = own.claim(INDEX_COLUMN);
      keyNote = `no id-like field was unique within each ${from} array, so ${index} (the element's place) is in the key`;
    }
    tables.push({
      name,
      from,
      parentKey: parentKeyMap,
      ...(index ? { index } : {}),
      key: [...carried, unique?.name ?? (index as string)],
      keyNote,
      columns: childColumns,
      note: `one row per element of ${from}`,
    });
  }

  if (skipped.length > 0)
    notes.push(`left out: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? '; …' : ''}`);
  const update = columns.find(
    (c) => (c.type === 'timestamp' || c.type === 'date') && UPDATE_TIME.test(c.path.split('.').at(-1) ?? ''),
  );
  return {
    tables,
    notes,
    ...(update
      ? {
          incremental: {
            cursorField: update.path,
            note: `${update.path} looks like an update time: to pull only what changed since the last run, uncomment and set param to the API's "changed since" query parameter`,
          },
        }
      : {}),
  };
}

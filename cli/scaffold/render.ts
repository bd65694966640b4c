// The proposal as YAML in the sources-file shape (`sources: { <name>: … }`), with a short comment on every
// guess. Built as a `yaml` Document so comments sit on the nodes they explain and quoting is the library's.
import { Document, isMap, isPair, isScalar, isSeq, type Node, type Pair, type YAMLMap } from 'yaml';
import { ELEMENT_COLUMN, ELEMENT_PATH, type Auth, type Pagination } from '../../contract/source-config.ts';
import type { ColumnDraft, Inference, TableDraft } from './tables.ts';

export interface ProposalInput {
  name: string;
  /** How the proposal was made, for its first comment; holds no secret (auth names variables only). */
  command: string;
  url: string;
  query: Record<string, string>;
  allowPrivateNetwork: boolean;
  auth: Auth;
  recordsPath: string | undefined;
  recordsWhy: string;
  pagination: Pagination;
  paginationWhy: string;
  paginationNote?: string;
  pages: number;
  records: number;
  inference: Inference;
}

const WIDTH = 110;
/** A note this short sits at the end of its line; a longer one goes on lines above. */
const INLINE = 60;

/** Wraps a note into comment lines (the `#` is yaml's) that fit the width at this indent. */
function wrap(text: string, indent: number): string {
  const width = Math.max(40, WIDTH - indent - 2);
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    lines.push(line);
  }
  return lines.map((l) => ` ${l}`).join('\n');
}

function pairOf(map: YAMLMap, key: string): Pair<Node, Node> {
  const pair = map.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
  if (pair === undefined) throw new Error(`bug: no "${key}" in the proposal`);
  return pair as Pair<Node, Node>;
}

/** Puts a note on a map entry: at the end of its line when short and the value is a scalar or flow, else above. */
function note(map: YAMLMap, key: string, text: string | undefined, indent: number, inline = true): void {
  if (!text) return;
  const pair = pairOf(map, key);
  const value = pair.value;
  const flowOrScalar = isScalar(value) || ((isMap(value) || isSeq(value)) && value.flow === true);
  if (inline && flowOrScalar && text.length <= INLINE && value) value.comment = ` ${text}`;
  else {
    const before = pair.key.commentBefore;
    pair.key.commentBefore = before ? `${before}\n${wrap(text, indent)}` : wrap(text, indent);
  }
}

function flow(map: YAMLMap, key: string): void {
  const value = pairOf(map, key).value as { flow?: boolean } | null;
  if (value) value.flow = true;
}

function columnValue(column: ColumnDraft, child: boolean): unknown {
  const defaultPath = child && column.name === ELEMENT_COLUMN ? ELEMENT_PATH : column.name;
  return column.path === defaultPath ? column.type : { path: column.path, type: column.type };
}

function tableValue(table: TableDraft): Record<string, unknown> {
  const child = table.from !== undefined;
  return {
    ...(child ? { from: table.from, parentKey: table.parentKey } : {}),
    ...(table.index ? { index: table.index } : {}),
    key: table.key,
    columns: Object.fromEntries(table.columns.map((c) => [c.name, columnValue(c, child)])),
  };
}

function paginationValue(p: Pagination): Record<string, unknown> {
  const { maxPages: _default, ...rest } = p;
  return rest;
}

export function renderProposal(input: ProposalInput): string {
  const { inference } = input;
  const source: Record<string, unknown> = {
    request: { url: input.url, ...(Object.keys(input.query).length > 0 ? { query: input.query } : {}) },
    ...(input.allowPrivateNetwork ? { allowPrivateNetwork: true } : {}),
    ...(input.auth.kind === 'none' ? {} : { auth: input.auth }),
    ...(input.recordsPath === undefined ? {} : { records: input.recordsPath }),
    pagination: paginationValue(input.pagination),
    tables: Object.fromEntries(inference.tables.map((t) => [t.name, tableValue(t)])),
  };
  const doc = new Document({ sources: { [input.name]: source } });
  // The command stays on one line, however long, so it can be copied back.
  doc.commentBefore = ` ${input.command}\n${wrap(
    `A source proposed from ${input.pages} page${input.pages === 1 ? '' : 's'} (${input.records} records) of ${input.url}. ` +
      'Each choice below is a guess from those records: read the comments, fix what is wrong, then add the source ' +
      'to the sources file (AFLUENTE_SOURCES_FILE). Without a `schema` file, records are checked against a JSON ' +
      'Schema derived from `tables`.',
    0,
  )}`;
  const root = doc.contents as YAMLMap;
  const sources = pairOf(root, 'sources').value as YAMLMap;
  const map = pairOf(sources, input.name).value as YAMLMap;
  const indent = 4;
  if (input.allowPrivateNetwork)
    note(map, 'allowPrivateNetwork', 'the API is on a loopback or private address', indent);
  if (input.auth.kind !== 'none') {
    flow(map, 'auth');
    note(map, 'auth', 'names environment variables, never the secrets', indent);
  }
  if (input.recordsPath !== undefined) note(map, 'records', input.recordsWhy, indent);
  flow(map, 'pagination');
  note(map, 'pagination', input.paginationWhy, indent, false);
  if (input.paginationNote) note(map, 'pagination', input.paginationNote, indent, false);
  if (Object.keys(input.query).length > 0) {
    const request = pairOf(map, 'request').value as YAMLMap;
    note(request, 'query', 'sent with every page', indent + 2);
  }

  if (inference.incremental) {
    const { cursorField, note: why } = inference.incremental;
    note(
      map,
      'tables',
      `${why}:\nincremental: { cursorField: ${cursorField}, param: CHANGED_SINCE_PARAM }`,
      indent,
      false,
    );
  }
  for (const text of inference.notes) note(map, 'tables', text, indent, false);

  const tables = pairOf(map, 'tables').value as YAMLMap;
  for (const table of inference.tables) {
    const tableMap = pairOf(tables, table.name).value as YAMLMap;
    note(tables, table.name, table.note, indent + 2, false);
    flow(tableMap, 'key');
    if (table.parentKey) {
      flow(tableMap, 'parentKey');
      note(tableMap, 'parentKey', `the parent ${inference.tables[0]?.name} row's key`, indent + 4);
    }
    if (table.index) note(tableMap, 'index', "the element's place in the array, from 0", indent + 4);
    note(tableMap, 'key', table.keyNote, indent + 4);
    const columns = pairOf(tableMap, 'columns').value as YAMLMap;
    for (const column of table.columns) {
      if (typeof columnValue(column, table.from !== undefined) === 'object') flow(columns, column.name);
      note(columns, column.name, column.note, indent + 6);
    }
  }
  return doc.toString({ lineWidth: 0 });
}

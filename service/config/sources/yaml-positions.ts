// Maps a field path back to where the YAML text writes it, so each problem can name its line.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';

export type Segment = string | number;
export type Path = readonly Segment[];

interface Position {
  readonly line: number;
  readonly column: number;
}

// Points at the key of the deepest field that exists, so a missing field is reported where its
// parent is written.
export function positionOf(document: Document, lines: LineCounter, at: Path): Position {
  let node: unknown = document.contents;
  let offset = rangeStart(node) ?? 0;
  for (const segment of at) {
    if (isAlias(node)) node = node.resolve(document);
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (pair === undefined) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

function rangeStart(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node) || !Array.isArray(node.range)) return;
  const [start] = node.range as unknown[];
  return typeof start === 'number' ? start : undefined;
}

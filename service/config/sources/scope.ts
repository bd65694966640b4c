// Collects problems instead of throwing at the first, so one run lists every mistake in the file.
import type { Document, LineCounter } from 'yaml';
import type { SourcesConfigProblem } from './errors.ts';
import { positionOf, type Path } from './yaml-positions.ts';

export class ProblemSink {
  readonly problems: SourcesConfigProblem[] = [];
  readonly #document: Document;
  readonly #lines: LineCounter;

  constructor(document: Document, lines: LineCounter) {
    this.#document = document;
    this.#lines = lines;
  }

  add(at: Path, problem: Omit<SourcesConfigProblem, 'line' | 'column'>): void {
    this.problems.push({ ...problem, ...positionOf(this.#document, this.#lines, at) });
  }

  sorted(): SourcesConfigProblem[] {
    return this.problems.toSorted(
      (a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0),
    );
  }
}

/** Reports problems under one base path (a source, or the file itself); paths are relative to it. */
export interface Scope {
  count(): number;
  /** Reports `<field> <predicate>`, e.g. problem(['pagination', 'size'], 'is required'). */
  problem(at: Path, predicate: string): void;
  /** Reports a sentence that names the field its own way, e.g. `unknown field "paginaton"`. */
  sentence(at: Path, message: string): void;
}

export function scopeOf(sink: ProblemSink, base: Path, source?: string): Scope {
  const add = (at: Path, message: string): void =>
    sink.add([...base, ...at], {
      ...(source === undefined ? {} : { source }),
      field: fieldName(at),
      message,
    });
  return {
    count: () => sink.problems.filter((problem) => problem.source === source).length,
    problem: (at, predicate) => add(at, at.length === 0 ? predicate : `${fieldName(at)} ${predicate}`),
    sentence: add,
  };
}

export function fieldName(at: Path): string {
  return at.reduce<string>((name, segment) => {
    if (typeof segment === 'number') return `${name}[${segment}]`;
    return name === '' ? segment : `${name}.${segment}`;
  }, '');
}

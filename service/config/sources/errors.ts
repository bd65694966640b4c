// The error a bad sources file fails with at boot; its message is what the operator reads.
export interface SourcesConfigProblem {
  /** The source the problem is in; absent for problems with the file as a whole. */
  readonly source?: string;
  /** Where the problem is, as a dotted path inside the source (or the file), e.g. `pagination.kind`. */
  readonly field: string;
  /** A whole sentence that starts with the field, e.g. `pagination.size is required`. */
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}

export class SourcesConfigError extends Error {
  /** The sources file as it was given to `loadSources`. */
  readonly file: string;
  readonly problems: readonly SourcesConfigProblem[];

  constructor(file: string, problems: readonly SourcesConfigProblem[]) {
    super(problems.map((problem) => formatProblem(file, problem)).join('\n'));
    this.name = 'SourcesConfigError';
    this.file = file;
    this.problems = problems;
  }
}

/** `<file>:<line>:<col>: source "<name>": <message>`; the parts that are unknown are left out. */
export function formatProblem(file: string, problem: SourcesConfigProblem): string {
  const where = problem.line === undefined ? '' : `${file}:${problem.line}:${problem.column ?? 1}: `;
  const source = problem.source === undefined ? '' : `source "${problem.source}": `;
  return `${where}${source}${problem.message}`;
}

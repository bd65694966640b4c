/** How much of a local step's output is kept in memory; the whole of it goes to the step's log file. */
export const STDERR_TAIL_BYTES = 64 * 1024;
const MESSAGE_MAX = 1000;

/** The last `max` characters of a stream, kept as it is written. */
export class Tail {
  #text = '';
  readonly #max: number;

  constructor(max = STDERR_TAIL_BYTES) {
    this.#max = max;
  }

  push(chunk: Buffer | string): void {
    this.#text = (this.#text + chunk.toString()).slice(-this.#max);
  }

  get text(): string {
    return this.#text;
  }
}

// `ValueError: …`, `pyspark.errors.exceptions.captured.AnalysisException: …`, `java.lang.OutOfMemoryError: …`,
// `Exception in thread "main" …`. A log4j line starts with a date, so it never matches.
const EXCEPTION_LINE =
  /^(?:Exception in thread |(?:[A-Za-z_][\w$]*\.)*[A-Z][\w$]*(?:Error|Exception)\b(?::|$))/;
// log4j's default layout: `26/01/31 10:00:00 ERROR SparkContext: …`.
const LOG4J_LINE = /^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d (\w+) /;

/**
 * The line of a failed local step's output that says why, for the job's error message (the whole output is in
 * the log file). `output` is the step's streams (stdout, then stderr), each cut into lines on its own, so that a
 * line one stream leaves unfinished never runs into a line of the other. In order: the job's own last word
 * (`<job>: …`, which both engines write last on stderr), taken from where it starts in its line, since spark-submit
 * relays the driver's stdout and stderr on one stream where an unfinished line of output may run into it; the last
 * Python or Java exception line; the last log4j ERROR line; else how the process (`tool`) ended and its last line
 * that is not log4j chatter. Never more than 1000 characters.
 */
export function failureMessage(
  output: string | readonly string[],
  job: string,
  exit: { code: number | null; signal: NodeJS.Signals | null },
  tool = 'spark-submit',
): string {
  // A progress bar redraws its line with \r: each redraw is a line of its own.
  const lines = (typeof output === 'string' ? [output] : output)
    .flatMap((stream) => stream.split(/\r\n|\r|\n/))
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const level = (l: string): string | undefined => LOG4J_LINE.exec(l)?.[1];
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code ?? 'unknown'}`;
  // Job names are plain identifiers (SPARK_JOBS): nothing in them needs escaping.
  const word = new RegExp(`${job}:(?: |$)`);
  const own = lines.findLast((l) => word.test(l));
  const explained =
    own?.slice(own.search(word)) ??
    lines.findLast((l) => EXCEPTION_LINE.test(l)) ??
    lines.findLast((l) => level(l) === 'ERROR');
  const last = lines.findLast((l) => !['INFO', 'DEBUG', 'TRACE'].includes(level(l) ?? '')) ?? lines.at(-1);
  let line: string;
  if (explained) line = explained;
  else if (last) line = `${tool} ${how}; its last line: ${last}`;
  else line = `${tool} ${how} and wrote nothing`;
  return line.length > MESSAGE_MAX ? `${line.slice(0, MESSAGE_MAX - 1)}…` : line;
}

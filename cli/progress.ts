import cliProgress from 'cli-progress';

// Live progress: cli-progress bars on a terminal, and plain lines (one each time a row changes) anywhere else,
// so CI logs and piped output read as a story instead of a stream of redraws.

/** One bar: the text left of it, how full it is, and the text right of it. */
export interface ProgressRow {
  label: string;
  /** 0..1; null while the row is busy with nothing to measure (an animated bar on a terminal). */
  fraction: number | null;
  /** Right of the bar; `now` lets an elapsed time tick between two polls. */
  text: (now: number) => string;
  /** What has to change for the plain output to print the row again (the clock alone does not). */
  signature: string;
}

const BAR_SIZE = 20;
// cli-progress's bar formatter cuts its bar from these pre-rendered strings.
const BAR_OPTIONS = {
  barsize: BAR_SIZE,
  barGlue: '',
  barCompleteString: '█'.repeat(BAR_SIZE),
  barIncompleteString: '░'.repeat(BAR_SIZE),
};

/** A bar filled to `fraction`, drawn by cli-progress's own bar formatter. */
export function staticBar(fraction: number): string {
  const bar = cliProgress.Format.BarFormat(Math.min(1, Math.max(0, fraction)), BAR_OPTIONS);
  return `[${bar}]`;
}

/** A block sweeping back and forth: busy, with no total to measure against. */
function busyBar(now: number): string {
  const width = 4;
  const travel = BAR_SIZE - width;
  const step = Math.floor(now / 100) % (2 * travel);
  const at = step <= travel ? step : 2 * travel - step;
  return `[${'░'.repeat(at)}${'█'.repeat(width)}${'░'.repeat(travel - at)}]`;
}

const render = (row: ProgressRow, now: number, tty: boolean): string =>
  `${row.label} ${row.fraction === null ? (tty ? busyBar(now) : staticBar(0)) : staticBar(row.fraction)} ${row.text(now)}`.trimEnd();

export interface ProgressOutput {
  write(chunk: string): boolean;
  isTTY?: boolean;
}

export class LiveProgress {
  readonly #out: ProgressOutput;
  readonly #tty: boolean;
  #multi: cliProgress.MultiBar | undefined;
  readonly #bars: cliProgress.SingleBar[] = [];
  readonly #printed: string[] = [];

  constructor(out: ProgressOutput, tty = out.isTTY === true) {
    this.#out = out;
    this.#tty = tty;
  }

  /** Shows these rows: redraws the bars on a terminal, prints the rows that changed anywhere else. */
  update(rows: ProgressRow[]): void {
    const now = Date.now();
    if (!this.#tty) {
      rows.forEach((row, i) => {
        if (this.#printed[i] === row.signature) return;
        this.#printed[i] = row.signature;
        this.#out.write(`${render(row, now, false)}\n`);
      });
      return;
    }
    this.#multi ??= new cliProgress.MultiBar({
      stream: this.#out as NodeJS.WritableStream,
      // The row renders itself; cli-progress schedules the redraws, keeps the bars in place and clips long lines.
      format: (_options, _params, payload: { row: ProgressRow }) => render(payload.row, Date.now(), true),
      fps: 10,
      hideCursor: true,
      // Ctrl-C is the caller's: it stops waiting and says what happens to the run.
      gracefulExit: false,
      clearOnComplete: false,
    });
    rows.forEach((row, i) => {
      const value = row.fraction ?? 0;
      const bar = this.#bars[i];
      if (bar) bar.update(value, { row });
      else this.#bars[i] = (this.#multi as cliProgress.MultiBar).create(1, value, { row });
    });
  }

  /** A line of its own, above the bars on a terminal. */
  note(line: string): void {
    if (this.#multi) this.#multi.log(`${line}\n`);
    else this.#out.write(`${line}\n`);
  }

  /** Leaves the bars as they last were (the final state) and gives the terminal back. */
  stop(): void {
    if (!this.#multi) return;
    this.#multi.update();
    this.#multi.stop();
    this.#multi = undefined;
  }
}

// A local step's pid file: `<dir>/<step name as a file name>.pid`, written right after the spawn and removed when
// the step ends. It is how a later attempt finds a leftover of its step, and how listLive finds the steps of this
// deployment whichever worker started them.
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseStepName, type StepRef } from './step-runner.ts';

/** A pid file's name: {@link stepFileName} of a step name, then `.pid`. */
const PID_FILE = /^afluente_run=(\d+)_job=(\d+)_(\w+)\.pid$/;

/** A step name as a file name: `afluente run=7 job=12 split_tables` → `afluente_run=7_job=12_split_tables`. */
export function stepFileName(stepName: string): string {
  return stepName.replace(/[^A-Za-z0-9._=-]+/g, '_');
}

export interface PidFile {
  path: string;
  pid: number;
  /** When the step was started (the file is written right after the spawn). */
  mtime: Date;
  /** The step, from the file's name. */
  ref: StepRef;
}

/** The pid files of one runner, in its own folder. */
export class PidFiles {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** `<dir>/<step name as a file name>`: the pid file, log and staging folder add their own ending. */
  base(stepName: string): string {
    return join(this.dir, stepFileName(stepName));
  }

  /** The pid in a step's pid file, or 0 when there is none. */
  async read(stepName: string): Promise<number> {
    const pid = Number(await readFile(`${this.base(stepName)}.pid`, 'utf8').catch(() => ''));
    return Number.isInteger(pid) && pid > 1 ? pid : 0;
  }

  async write(stepName: string, pid: number): Promise<void> {
    await writeFile(`${this.base(stepName)}.pid`, String(pid));
  }

  async remove(stepName: string): Promise<void> {
    await rm(`${this.base(stepName)}.pid`, { force: true });
  }

  async list(): Promise<PidFile[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const files: PidFile[] = [];
    for (const base of names) {
      const match = PID_FILE.exec(base);
      const ref = match && parseStepName(`afluente run=${match[1]} job=${match[2]} ${match[3]}`);
      if (!ref) continue;
      const path = join(this.dir, base);
      const [text, info] = await Promise.all([
        readFile(path, 'utf8').catch(() => ''),
        stat(path).catch(() => undefined),
      ]);
      const pid = Number(text);
      if (!Number.isInteger(pid) || pid <= 1 || !info) continue;
      files.push({ path, pid, mtime: info.mtime, ref });
    }
    return files;
  }

  /** Removes a pid file unless a new attempt of its step has written its own pid into it meanwhile. */
  async removeIfStill(file: PidFile): Promise<void> {
    if (Number(await readFile(file.path, 'utf8').catch(() => '')) === file.pid)
      await rm(file.path, { force: true });
  }
}

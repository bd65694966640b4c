// A local step is a process tree: spark-submit execs a JVM, which starts the Python driver, which starts Python
// workers (an embedded step is one Python process, with DuckDB's threads). The runner spawns it as the leader of
// its own process group, so the whole tree is signalled at once and nothing outlives a cancel.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Whether any process is left in the group led by `pgid` (signal 0 checks without signalling). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    // EPERM: the group exists but belongs to someone else; still alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * Stops every process in the group: SIGTERM, so the JVM runs its shutdown hooks and stops Spark, then SIGKILL
 * for whatever is left after `graceMs`. Resolves once the group is empty (or 5 s after the SIGKILL).
 */
export async function killGroup(pgid: number, graceMs: number): Promise<void> {
  if (!groupAlive(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  if (await waitGone(pgid, graceMs)) return;
  signalGroup(pgid, 'SIGKILL');
  await waitGone(pgid, 5000);
}

/** SIGKILL for what is left of a group whose leader has exited (a Python worker that missed its JVM's end). */
export function reapGroup(pgid: number): void {
  signalGroup(pgid, 'SIGKILL');
}

/**
 * A process's command line, split into its arguments (empty when the process is gone). Used to recognise a
 * process this runner did not start: a step left behind by a worker that died. Linux only (`/proc`); elsewhere,
 * every process reads as gone.
 */
export async function commandLine(pid: number): Promise<string[]> {
  if (!Number.isInteger(pid) || pid <= 1) return [];
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return text === '' ? [] : text.replace(/\0$/, '').split('\0');
}

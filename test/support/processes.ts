import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';

/** The processes in a process group, from /proc, with their command lines. */
export async function groupMembers(pgid: number): Promise<{ pid: number; cmd: string }[]> {
  const members = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // `pid (comm) state ppid pgrp …`; comm may hold spaces, so split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    members.push({ pid: Number(name), cmd: cmd.replaceAll('\0', ' ') });
  }
  return members;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A sleeping Python of .venv whose command line carries `args` (after `-c`, so Python ignores them), in a process
 * group of its own and not waited for: a stand-in for a step a worker that died left behind.
 */
export async function sleepingProcess(args: string[]): Promise<number> {
  const child = spawn('.venv/bin/python', ['-c', 'import time; time.sleep(120)', ...args], {
    detached: true,
    stdio: 'ignore',
  });
  await once(child, 'spawn');
  child.unref();
  return child.pid as number;
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.ts';

/** What the app uses of cdk.json: its context (flags and feature flags) and the output folder. */
export interface CdkJson {
  context: Record<string, unknown>;
  /** Absolute. */
  outdir: string;
}

/** Reads the repo's cdk.json, the one source of the context defaults for the CLI and the tests. */
export function readCdkJson(): CdkJson {
  const parsed = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
    output?: string;
  };
  return { context: parsed.context ?? {}, outdir: join(REPO_ROOT, parsed.output ?? 'cdk.out') };
}

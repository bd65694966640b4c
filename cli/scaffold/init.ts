// What `afluente sources init` does: checks its input, samples the API, infers the tables, prints the proposal
// and the summary. Unlike the other commands it talks to the source's API, not to the service, so it needs no
// AFLUENTE_URL or token.
import { stat, writeFile } from 'node:fs/promises';
import { FIELD_PATH_PATTERN, SOURCE_NAME_PATTERN, type Auth } from '../../contract/source-config.ts';
import { safeUrl } from '../../lambdas/common/errors.ts';
import { EXIT } from '../commands.ts';
import { AuthSpecError, parseAuthSpec } from './auth-spec.ts';
import { identifier } from './names.ts';
import { renderProposal } from './render.ts';
import { sample, SampleError } from './sample.ts';
import { InferenceError, inferTables } from './tables.ts';

const SOURCE_NAME = new RegExp(SOURCE_NAME_PATTERN);
const FIELD_PATH = new RegExp(FIELD_PATH_PATTERN);
// Query parameters that carry credentials: in --url they would be printed in the proposal.
const SECRET_PARAM =
  /^(api[-_]?key|apikey|key|token|access[-_]?token|auth|auth[-_]?token|secret|client[-_]?secret|password|passwd|signature|sig)$/i;
const TIMEOUT_MS = 10_000;

export interface InitOptions {
  url: string;
  records?: string;
  auth?: string;
  pages: number;
  out?: string;
  allowPrivateNetwork?: boolean;
}

export interface InitIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  env: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

/** The table name the records get: the URL's last meaningful path segment, else the source's name. */
function parentName(url: URL, name: string): string {
  const segments = url.pathname.split('/').filter(Boolean).reverse();
  for (const segment of segments) {
    const bare = decodeURIComponent(segment).replace(/\.(json|jsonl|ndjson)$/i, '');
    if (/^(v\d+(\.\d+)?|api|rest|\d+|[0-9a-f-]{16,})$/i.test(bare) || !/[a-z]/i.test(bare)) continue;
    return identifier(bare, name);
  }
  return name;
}

function checkInput(name: string, options: InitOptions): { url: URL; auth: Auth } {
  if (!SOURCE_NAME.test(name))
    throw new UsageError(
      `source name "${name}" is not valid: use a-z, 0-9 and _, start with a letter and keep it to 48 characters`,
    );
  const url = URL.parse(options.url);
  if (url === null)
    throw new UsageError(
      `--url "${options.url}" is not an absolute URL, such as https://api.example.com/v1/orders`,
    );
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--url must be an http:// or https:// URL, not ${url.protocol}`);
  if (url.username !== '' || url.password !== '')
    throw new UsageError(
      `--url ${safeUrl(url)} must not carry credentials (they would be printed): use --auth basic:USER_ENV:PASS_ENV`,
    );
  for (const param of url.searchParams.keys()) {
    if (SECRET_PARAM.test(param))
      throw new UsageError(
        `--url: its query parameter "${param}" looks like a credential, which the proposal would print; ` +
          `name the variable that holds it instead: --auth apiKey:query:${param}:MY_KEY_ENV`,
      );
  }
  if (options.records !== undefined && options.records !== '.' && !FIELD_PATH.test(options.records))
    throw new UsageError(
      `--records "${options.records}" is not a dot path such as data or result.items (or . for the body)`,
    );
  let auth: Auth = { kind: 'none' };
  if (options.auth !== undefined) {
    try {
      auth = parseAuthSpec(options.auth);
    } catch (error) {
      if (error instanceof AuthSpecError) throw new UsageError(error.message);
      throw error;
    }
  }
  return { url, auth };
}

/** The command line the proposal says it came from; --auth holds variable names only, so it may be shown. */
function commandLine(name: string, options: InitOptions, url: URL): string {
  const parts = [`afluente sources init ${name} --url ${safeUrl(url)}`];
  if (options.records !== undefined) parts.push(`--records ${options.records}`);
  if (options.auth !== undefined) parts.push(`--auth ${options.auth}`);
  if (options.allowPrivateNetwork) parts.push('--allow-private-network');
  return parts.join(' ');
}

export async function init(name: string, options: InitOptions, io: InitIo): Promise<number> {
  const say = (line: string): void => void io.err.write(`${line}\n`);
  try {
    const { url, auth } = checkInput(name, options);
    if (options.out !== undefined && (await exists(options.out)))
      throw new UsageError(`--out ${options.out} already exists: refusing to overwrite it`);
    const sampled = await sample({
      name,
      url,
      auth,
      env: io.env,
      allowPrivateNetwork: options.allowPrivateNetwork === true,
      records: options.records,
      pages: options.pages,
      timeoutMs: TIMEOUT_MS,
      log: (line) => say(`  ${line}`),
    });
    const inference = inferTables(sampled.records, parentName(url, name));
    const yaml = renderProposal({
      name,
      command: commandLine(name, options, url),
      url: sampled.request.url,
      query: sampled.request.query,
      allowPrivateNetwork: options.allowPrivateNetwork === true,
      auth,
      recordsPath: sampled.recordsPath,
      recordsWhy: sampled.recordsWhy,
      pagination: sampled.pagination,
      paginationWhy: sampled.paginationWhy,
      ...(sampled.paginationNote ? { paginationNote: sampled.paginationNote } : {}),
      pages: sampled.pages,
      records: sampled.records.length,
      inference,
    });
    say(
      `sampled ${sampled.pages} page${sampled.pages === 1 ? '' : 's'}, ${sampled.records.length} records of ${safeUrl(url)}`,
    );
    say(`  records: ${sampled.recordsPath ?? '(the body)'}: ${sampled.recordsWhy}`);
    say(`  pagination: ${sampled.pagination.kind}: ${sampled.paginationWhy}`);
    for (const table of inference.tables)
      say(
        `  table ${table.name}${table.from ? ` (from ${table.from})` : ''}: ${table.columns.length} column${table.columns.length === 1 ? '' : 's'}, key ${table.key.join(', ')}`,
      );
    if (inference.incremental)
      say(`  incremental: ${inference.incremental.cursorField} looks like an update time (see the comment)`);
    if (options.out !== undefined) {
      try {
        await writeFile(options.out, yaml, { flag: 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST')
          throw new UsageError(`--out ${options.out} already exists: refusing to overwrite it`);
        throw new UsageError(`--out ${options.out}: ${(error as Error).message}`);
      }
      say(`proposal written to ${options.out}: read its comments, then add the source to the sources file`);
    } else {
      io.out.write(yaml);
      say('proposal printed on stdout: read its comments, then add the source to the sources file');
    }
    return EXIT.ok;
  } catch (error) {
    if (error instanceof UsageError) {
      say(`afluente: ${error.message}`);
      return EXIT.usage;
    }
    if (error instanceof SampleError) {
      say(`afluente: ${error.message}`);
      return error.exit === 'usage' ? EXIT.usage : EXIT.api;
    }
    if (error instanceof InferenceError) {
      say(`afluente: ${error.message}`);
      return EXIT.api;
    }
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

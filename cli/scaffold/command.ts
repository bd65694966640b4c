// `afluente sources init <name> --url …`: samples an API and prints a proposed source. Unlike the other
// commands it talks to the source's API, not to the service, so it needs no AFLUENTE_URL or token.
import { stat, writeFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { FIELD_PATH_PATTERN, SOURCE_NAME_PATTERN, type Auth } from '../../contract/source-config.ts';
import { safeUrl } from '../../lambdas/common/errors.ts';
import { CLI, EXIT } from '../commands.ts';
import { AUTH_FORMS, AuthSpecError, parseAuthSpec } from './auth-spec.ts';
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

const INIT_HELP = `
What it does:
  GETs --url through the ingest's own HTTP client (the same network guard, retries and auth), finds the
  records (--records, or the largest array of objects in the body), detects the pagination (a Link header,
  a next cursor or next URL in the body, offset/limit/total or page/per_page/total_pages fields), follows
  pages 2..n with the ingest's paginator to confirm it, and infers tables from the records: a parent table
  of their fields, a child table per array, json columns for maps, key candidates and an incremental field.
  The proposal goes to stdout (or --out), the summary of what was sampled to stderr.

Auth (--auth names environment variables, never secrets):
  ${AUTH_FORMS.join('\n  ')}

Exit codes:
  0    the proposal was printed (or written to --out)
  2    usage error: a bad flag, a private address without --allow-private-network, an unset auth variable,
       an --out file that exists
  3    the API answered an error (the message names the HTTP status and the URL, credentials removed), could
       not be reached, or answered something unusable (not JSON, no array of records)
  70   a bug in the CLI

Examples:
  ${CLI} sources init orders --url https://api.example.com/v1/orders --auth bearer:EXAMPLE_TOKEN
  ${CLI} sources init demo --url 'http://127.0.0.1:8787/orders?per_page=100' --allow-private-network --out demo.yaml`;

function pages(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 20) throw new InvalidArgumentError('a number from 1 to 20');
  return n;
}

/** `sources` and its `init` subcommand. */
export function addSourcesCommand(program: Command, done: (code: number) => void): void {
  const sources = program
    .command('sources')
    .description('source configs: `sources init` samples an API and proposes a source for the sources file');
  sources
    .command('init')
    .description('sample a few pages of an API and print a proposed source (YAML) for the sources file')
    .argument('<name>', "the new source's name (a-z, 0-9 and _, starting with a letter, up to 48 characters)")
    .requiredOption('--url <url>', "the API's URL that lists the records, with any fixed query parameters")
    .option('--records <path>', 'dot path of the records array in a page body (. for the body itself)')
    .option('--auth <spec>', `how to authenticate, naming environment variables: ${AUTH_FORMS.join(', ')}`)
    .addOption(
      new Option('--pages <n>', 'how many pages to sample, the first included (1-20)')
        .argParser(pages)
        .default(3),
    )
    .option('--out <file>', 'write the proposal to this file (never overwrites one) instead of stdout')
    .option(
      '--allow-private-network',
      'let --url reach loopback and private addresses (the proposal says so too)',
    )
    .addHelpText('after', INIT_HELP)
    .action(async (name: string, options: InitOptions) =>
      done(await init(name, options, { out: process.stdout, err: process.stderr, env: process.env })),
    );
}

/**
 * True when the command line runs `sources …`: its `--url` is the API's, so program options must end where
 * `sources` starts (commander's positional options), or the program's own `--url` would take it.
 */
export function runsSources(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--url' || arg === '--interval') i++;
    else if (!arg.startsWith('-')) return arg === 'sources';
  }
  return false;
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

// The `afluente` command line: a commander program over the service's HTTP API. `afluente.mjs` (the package's
// bin) checks the Node version and imports this file.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import pkg from '../package.json' with { type: 'json' };
import { ApiClient, ApiError, ConnectionError, DEFAULT_URL } from './client.ts';
import * as commands from './commands.ts';
import { CLI, EXIT, type Context } from './commands.ts';
import { addSourcesCommand, runsSources } from './scaffold/command.ts';

const STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'];
const ENGINES = ['auto', 'embedded', 'spark'];

/** `--engine`: the run's transform and load engine, over the source's `engine`. */
function engineOption(): Option {
  return new Option(
    '--engine <engine>',
    "the transform and load's engine, over the source's: auto (embedded up to the service's " +
      'AFLUENTE_EMBEDDED_MAX_BYTES of validated data), embedded (DuckDB in the worker) or spark',
  ).choices(ENGINES);
}

const HELP_AFTER = `
Environment:
  AFLUENTE_URL    the service's base URL (or --url); default ${DEFAULT_URL}
  AFLUENTE_TOKEN  the bearer token, one of the service's AFLUENTE_API_TOKENS (never a flag, never printed)

Exit codes:
  0    done; with --wait, the run COMPLETED (a backfill: every window completed)
  1    with --wait, the run FAILED or was CANCELLED (a backfill: a window failed, or it was cancelled)
  2    usage error
  3    the service answered an error (the message names the HTTP status), or could not be reached
  70   a bug in the CLI (the message has its stack)
  130  Ctrl-C while waiting: the run goes on in the service

Examples:
  ${CLI} run demo --wait
  ${CLI} runs --source demo --status FAILED
  ${CLI} retry 12 --engine spark --wait
  ${CLI} schema demo --from 3
  ${CLI} backfill demo --from 2026-01-01 --to 2026-01-08 --step P1D --wait`;

/** A usage mistake found after parsing (a bad --url): exit code 2, like commander's own. */
class UsageError extends Error {}

function runId(value: string): number {
  const id = Number(value);
  if (!/^\d+$/.test(value) || id < 1 || id > 4294967295)
    throw new InvalidArgumentError('a run id is a positive integer');
  return id;
}

function versionId(value: string): number {
  const id = Number(value);
  if (!/^\d+$/.test(value) || id < 1 || id > 4294967295)
    throw new InvalidArgumentError('a schema version id is a positive integer');
  return id;
}

function backfillId(value: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw new InvalidArgumentError('not a backfill id');
  return value;
}

function limit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 100) throw new InvalidArgumentError('a number from 1 to 100');
  return n;
}

function status(value: string): string {
  const upper = value.toUpperCase();
  if (!STATUSES.includes(upper)) throw new InvalidArgumentError(`one of ${STATUSES.join(', ')}`);
  return upper;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.1 || n > 3600) throw new InvalidArgumentError('seconds, from 0.1 to 3600');
  return n;
}

interface GlobalOptions {
  url: string;
  json?: boolean;
  interval: number;
}

function contextOf(command: Command): Context {
  const options = command.optsWithGlobals<GlobalOptions>();
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new UsageError(`--url (or AFLUENTE_URL) "${options.url}" is not a URL, such as ${DEFAULT_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--url (or AFLUENTE_URL) must be an http:// or https:// URL, not ${url.protocol}`);
  return {
    client: new ApiClient({ baseUrl: url.toString(), token: process.env.AFLUENTE_TOKEN || undefined }),
    json: options.json === true,
    out: process.stdout,
    err: process.stderr,
    intervalMs: options.interval * 1000,
  };
}

/** The program; each action hands its exit code to `done`. */
export function buildProgram(done: (code: number) => void): Command {
  const program = new Command('afluente')
    .description(
      "Start, follow, list, cancel and retry afluente runs and backfills, and show a source's schema versions, " +
        "over the service's HTTP API.",
    )
    .version(pkg.version)
    .addOption(new Option('--url <url>', "the service's base URL").env('AFLUENTE_URL').default(DEFAULT_URL))
    .option('--json', "print the API's JSON instead of text, for scripts")
    .addOption(
      new Option('--interval <seconds>', 'how often --wait asks the service').argParser(seconds).default(1),
    )
    .addHelpText('after', HELP_AFTER)
    .showHelpAfterError(`(${CLI} --help for usage)`)
    .exitOverride();

  const act =
    <A extends unknown[]>(fn: (ctx: Context, ...args: A) => Promise<number>) =>
    async (...args: unknown[]): Promise<void> => {
      const command = args.at(-1) as Command;
      // commander passes the arguments, then the command's options, then the command.
      done(await fn(contextOf(command), ...(args.slice(0, -1) as A)));
    };

  program
    .command('run')
    .description('start a run of a source; with --wait, follow it stage by stage until it ends')
    .argument('<source>', "a source name from the service's sources file")
    .option('--from <date>', 'start of the window (inclusive), an ISO date or date-time')
    .option('--to <date>', 'end of the window (exclusive), an ISO date or date-time')
    .option('--cursor <cursor>', 'start from this incremental cursor instead of the stored one')
    .option('--idempotency-key <key>', 'a repeated request with the same key returns the same run')
    .addOption(engineOption())
    .option('--wait', 'follow the run: a bar per stage, then exit 0 if it COMPLETED, 1 if not')
    .action(act(commands.run));

  program
    .command('runs')
    .description('list runs, newest first')
    .option('--source <name>', "only this source's runs")
    .addOption(
      new Option('--status <status>', `only runs in this status (${STATUSES.join(', ')})`).argParser(status),
    )
    .addOption(new Option('--limit <n>', 'how many (1-100)').argParser(limit).default(20))
    .option('--cursor <cursor>', 'the next page, as the previous page printed it')
    .action(act(commands.runs));

  program
    .command('show')
    .description('a run: its status, counts, stages, error, attempts and lake files')
    .argument('<id>', 'the run id', runId)
    .option('--wait', 'follow the run until it ends, as run --wait does')
    .action(act(commands.show));

  program
    .command('cancel')
    .description('cancel a run that has not finished')
    .argument('<id>', 'the run id', runId)
    .option('--reason <text>', 'why, sent to the API with the cancel')
    .action(act((ctx, id: number, options: { reason?: string }) => commands.cancel(ctx, id, options.reason)));

  program
    .command('retry')
    .description('resume a FAILED run from its failed stage, as a new attempt')
    .argument('<id>', 'the run id', runId)
    .addOption(engineOption())
    .option(
      '--accept-key-change',
      'load even though a table key changed since its last load (after the warehouse table was dropped or renamed)',
    )
    .option('--wait', 'follow the run until it ends, as run --wait does')
    .action(act(commands.retry));

  program
    .command('schema')
    .description(
      "a source's schema versions, and what changes from one to another (by default from the latest loaded " +
        'version to the current config: what the next load changes)',
    )
    .argument('<source>', "a source name from the service's sources file")
    .addOption(
      new Option('--from <id>', 'a schema version id (default: the latest loaded)').argParser(versionId),
    )
    .addOption(
      new Option('--to <id>', 'a schema version id (default: the current config)').argParser(versionId),
    )
    .action(act(commands.schema));

  program
    .command('backfill')
    .description('pull a past window of a source as one run per step; with --wait, follow the windows')
    .argument('<source>', "a source name from the service's sources file")
    .requiredOption('--from <date>', 'start of the window (inclusive), an ISO date or date-time')
    .requiredOption('--to <date>', 'end of the window (exclusive), an ISO date or date-time')
    .requiredOption('--step <duration>', 'the window of each run, an ISO-8601 duration such as P1D or PT6H')
    .option('--wait', 'follow the backfill: a bar of windows done, then exit 0 if every window completed')
    .action(act(commands.backfill));

  program
    .command('backfill-status')
    .description('a backfill: its progress, counts and windows; with --wait, follow it until it ends')
    .argument('<id>', 'the backfill id', backfillId)
    .option('--wait', 'follow the backfill until it ends, as backfill --wait does')
    .action(act(commands.backfillStatus));

  program
    .command('backfill-cancel')
    .description('cancel a backfill: windows not yet finished are cancelled')
    .argument('<id>', 'the backfill id', backfillId)
    .action(act(commands.backfillCancel));

  addSourcesCommand(program, done);

  return program;
}

/** What went wrong, for a person: the HTTP status and the server's message, or the URL that did not answer. */
function explain(error: ApiError | ConnectionError, hasToken: boolean): string[] {
  if (error instanceof ConnectionError)
    return [
      `afluente: could not reach ${error.url}: ${error.message}`,
      '  is the service running there? Point the CLI at it with --url or AFLUENTE_URL.',
    ];
  const lines = [
    `afluente: ${error.method} ${error.url} answered ${error.status} ${error.statusText}: ${error.message}`,
  ];
  if (error.status === 401)
    lines.push(
      hasToken
        ? "  the service refused the token in AFLUENTE_TOKEN: it must be one of the service's AFLUENTE_API_TOKENS."
        : "  AFLUENTE_TOKEN is not set: set it to one of the service's tokens (its AFLUENTE_API_TOKENS).",
    );
  if (error.status === 404 && error.message.startsWith('route '))
    lines.push('  this service does not have that endpoint: is it an older version than this CLI?');
  return lines;
}

export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  if (runsSources(argv.slice(2))) program.enablePositionalOptions();
  try {
    await program.parseAsync(argv);
    return code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof UsageError) {
      process.stderr.write(`afluente: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof ApiError || error instanceof ConnectionError) {
      const hasToken = !!process.env.AFLUENTE_TOKEN;
      for (const line of explain(error, hasToken)) process.stderr.write(`${line}\n`);
      return EXIT.api;
    }
    // A bug here, not a failed run: its own exit code, so scripts never read it as one.
    process.stderr.write(
      `afluente: unexpected error: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    return EXIT.internal;
  }
}

// `npx afluente runs | head`: the reader went away, which is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
process.exitCode = await main(process.argv);

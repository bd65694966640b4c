// `afluente sources init <name> --url …`: the command's flags and help. The work is in init.ts, loaded only when
// the command runs, so the other commands do not pay for the HTTP client and the config schema at start-up.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { CLI } from '../commands.ts';
import type { InitOptions } from './init.ts';

/** The forms `--auth` takes: environment variable names only. */
export const AUTH_FORMS = [
  'none',
  'bearer:TOKEN_ENV',
  'apiKey:header:<Header-Name>:KEY_ENV',
  'apiKey:query:<param>:KEY_ENV',
  'basic:USER_ENV:PASS_ENV',
];

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
  // The last line of the program's examples.
  program.addHelpText(
    'after',
    `  ${CLI} sources init orders --url https://api.example.com/v1/orders --auth bearer:EXAMPLE_TOKEN`,
  );
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
    .action(async (name: string, options: InitOptions) => {
      const { init } = await import('./init.ts');
      done(await init(name, options, { out: process.stdout, err: process.stderr, env: process.env }));
    });
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

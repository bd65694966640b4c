/**
 * The environment variables of the `afluente` CLI (cli/README.md). An operator's shell often holds them beside
 * the service's own settings (`npm start` in one terminal, the CLI in the next, or the CLI inside the service's
 * container), so the service's config leaves them alone instead of calling them typos.
 */
export const CLI_ENV = [
  /** The service's base URL. */
  'AFLUENTE_URL',
  /** The bearer token the CLI sends: one of the service's AFLUENTE_API_TOKENS. */
  'AFLUENTE_TOKEN',
] as const;

// `npm run bench -- <name>`: runs one benchmark (see bench/README.md).
const BENCHES: Record<string, () => Promise<unknown>> = {
  ingest: () => import('./ingest/bench.ts'),
  validate: () => import('./validate/bench.ts'),
  e2e: () => import('./e2e/bench.ts'),
  api: () => import('./api/bench.ts'),
};

const name = process.argv[2];
const load = name ? BENCHES[name] : undefined;
if (!load) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}>`);
  process.exit(2);
}
await load();

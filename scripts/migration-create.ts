// `npm run migration:create [name]`: diffs the entities against a scratch database that has every committed
// migration applied, writes the new migration, and regenerates migrations/index.ts.
import { MikroORM } from '@mikro-orm/mysql';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../service/config/env.ts';
import { MIGRATIONS_PATH, ormOptions } from '../service/state/orm.ts';

const name = process.argv[2];
const base = new URL(loadConfig(process.env, { requireTokens: false }).mysql.url);
base.pathname = `/afluente_migration_${Date.now()}`;
const orm = await MikroORM.init(ormOptions(base.toString()));
try {
  await orm.migrator.up();
  const result = await orm.migrator.create(MIGRATIONS_PATH, false, false, name);
  console.log(result.fileName ? `created ${result.fileName}` : 'no changes: entities match the migrations');
} finally {
  await orm.schema.dropDatabase(base.pathname.slice(1));
  await orm.close();
}

const files = (await readdir(MIGRATIONS_PATH)).filter((f) => /^Migration\d+.*\.ts$/.test(f)).sort();
const classes = files.map((f) => f.replace(/\.ts$/, ''));
await writeFile(
  join(MIGRATIONS_PATH, 'index.ts'),
  [
    '// The committed migrations, oldest first. `npm run migration:create` regenerates this list.',
    ...classes.map((c) => `import { ${c} } from './${c}.ts';`),
    '',
    `export const MIGRATIONS = [${classes.map((c) => `{ name: '${c}', class: ${c} }`).join(', ')}];`,
    '',
  ].join('\n'),
);

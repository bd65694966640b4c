// The committed migrations, oldest first. `npm run migration:create` regenerates this list.
import { Migration20261123210527_initial } from './Migration20261123210527_initial.ts';
import { Migration20261123231421_run_load_fields } from './Migration20261123231421_run_load_fields.ts';
import { Migration20261124045748_replay_backfill } from './Migration20261124045748_replay_backfill.ts';
import { Migration20261203123733_engine_choice } from './Migration20261203123733_engine_choice.ts';
import { Migration20261203175102_schema_versions } from './Migration20261203175102_schema_versions.ts';

export const MIGRATIONS = [
  { name: 'Migration20261123210527_initial', class: Migration20261123210527_initial },
  { name: 'Migration20261123231421_run_load_fields', class: Migration20261123231421_run_load_fields },
  { name: 'Migration20261124045748_replay_backfill', class: Migration20261124045748_replay_backfill },
  { name: 'Migration20261203123733_engine_choice', class: Migration20261203123733_engine_choice },
  { name: 'Migration20261203175102_schema_versions', class: Migration20261203175102_schema_versions },
];

// The committed migrations, oldest first. `npm run migration:create` regenerates this list.
import { Migration20261123210527_initial } from './Migration20261123210527_initial.ts';

export const MIGRATIONS = [
  { name: 'Migration20261123210527_initial', class: Migration20261123210527_initial },
];

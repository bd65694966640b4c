import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the real change: MikroORM's diff on MariaDB also re-declares every JSON column and
// nullable default (it misreads MariaDB's json_valid checks and NULL defaults), which changes nothing.
export class Migration20261123231421_run_load_fields extends Migration {
  override name = 'Migration20261123231421_run_load_fields';

  override up(): void | Promise<void> {
    this.addSql(
      `alter table \`runs\` add \`duplicates\` bigint null, add \`next_cursor\` varchar(1024) null, add \`cluster_id\` varchar(64) null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(
      `alter table \`runs\` drop column \`duplicates\`, drop column \`next_cursor\`, drop column \`cluster_id\`;`,
    );
  }
}

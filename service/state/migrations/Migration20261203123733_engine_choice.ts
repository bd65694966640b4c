import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the real change: MikroORM's diff on MariaDB also re-declares every JSON column and
// nullable default (it misreads MariaDB's json_valid checks and NULL defaults), which changes nothing.
export class Migration20261203123733_engine_choice extends Migration {
  override name = 'Migration20261203123733_engine_choice';

  override up(): void | Promise<void> {
    this.addSql(
      `alter table \`runs\` add \`engine\` enum('embedded','spark') null, add \`engine_reason\` varchar(255) null;`,
    );
    this.addSql(
      `alter table \`jobs\` add \`engine\` enum('embedded','spark') null, add \`engine_reason\` varchar(255) null;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`jobs\` drop column \`engine\`, drop column \`engine_reason\`;`);
    this.addSql(`alter table \`runs\` drop column \`engine\`, drop column \`engine_reason\`;`);
  }
}

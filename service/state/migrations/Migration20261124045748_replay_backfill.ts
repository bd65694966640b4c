import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the real change: MikroORM's diff on MariaDB also re-declares every JSON column and
// nullable default (it misreads MariaDB's json_valid checks and NULL defaults), which changes nothing.
export class Migration20261124045748_replay_backfill extends Migration {
  override name = 'Migration20261124045748_replay_backfill';

  override up(): void | Promise<void> {
    this.addSql(
      `create table \`backfills\` (\`id\` int unsigned not null auto_increment primary key, \`source\` varchar(64) not null, \`window_from\` datetime(3) not null, \`window_to\` datetime(3) not null, \`step\` varchar(32) not null, \`windows\` int unsigned not null, \`created_by\` varchar(64) not null, \`idempotency_key\` varchar(255) null, \`request_hash\` varchar(64) null, \`created_at\` datetime(3) not null) default character set utf8mb4 engine = InnoDB;`,
    );
    this.addSql(`alter table \`backfills\` add index \`backfills_source_idx\` (\`source\`);`);
    this.addSql(
      `alter table \`backfills\` add unique \`backfills_idempotency_key_unique\` (\`idempotency_key\`);`,
    );
    this.addSql(
      `alter table \`runs\` add \`replay_of_id\` int unsigned null, add \`backfill_id\` int unsigned null;`,
    );
    this.addSql(
      `alter table \`runs\` add constraint \`runs_replay_of_id_foreign\` foreign key (\`replay_of_id\`) references \`runs\` (\`id\`) on delete set null;`,
    );
    this.addSql(
      `alter table \`runs\` add constraint \`runs_backfill_id_foreign\` foreign key (\`backfill_id\`) references \`backfills\` (\`id\`) on delete set null;`,
    );
    this.addSql(`alter table \`runs\` add index \`runs_replay_of_id_index\` (\`replay_of_id\`);`);
    this.addSql(`alter table \`runs\` add index \`runs_backfill_id_index\` (\`backfill_id\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`runs\` drop foreign key \`runs_backfill_id_foreign\`;`);
    this.addSql(`alter table \`runs\` drop foreign key \`runs_replay_of_id_foreign\`;`);
    this.addSql(`alter table \`runs\` drop index \`runs_replay_of_id_index\`;`);
    this.addSql(`alter table \`runs\` drop index \`runs_backfill_id_index\`;`);
    this.addSql(`alter table \`runs\` drop column \`replay_of_id\`, drop column \`backfill_id\`;`);
    this.addSql(`drop table if exists \`backfills\`;`);
  }
}

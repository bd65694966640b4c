import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the real change: MikroORM's diff on MariaDB also re-declares every JSON column and
// nullable default (it misreads MariaDB's json_valid checks and NULL defaults), which changes nothing.
export class Migration20261203175102_schema_versions extends Migration {
  override name = 'Migration20261203175102_schema_versions';

  override up(): void | Promise<void> {
    this.addSql(
      `create table \`schema_versions\` (\`id\` int unsigned not null auto_increment primary key, \`source\` varchar(64) not null, \`hash\` varchar(64) not null, \`spec\` json not null, \`created_at\` datetime(3) not null, \`first_loaded_at\` datetime(3) null, \`last_loaded_at\` datetime(3) null) default character set utf8mb4 engine = InnoDB;`,
    );
    this.addSql(
      `alter table \`schema_versions\` add unique \`schema_versions_source_hash_unique\` (\`source\`, \`hash\`);`,
    );
    this.addSql(`alter table \`runs\` add \`schema_version_id\` int unsigned null;`);
    this.addSql(
      `alter table \`runs\` add constraint \`runs_schema_version_id_foreign\` foreign key (\`schema_version_id\`) references \`schema_versions\` (\`id\`) on delete set null;`,
    );
    this.addSql(`alter table \`runs\` add index \`runs_schema_version_id_index\` (\`schema_version_id\`);`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`runs\` drop foreign key \`runs_schema_version_id_foreign\`;`);
    this.addSql(`alter table \`runs\` drop index \`runs_schema_version_id_index\`;`);
    this.addSql(`alter table \`runs\` drop column \`schema_version_id\`;`);
    this.addSql(`drop table if exists \`schema_versions\`;`);
  }
}

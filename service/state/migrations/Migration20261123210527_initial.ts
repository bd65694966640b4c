import { Migration } from '@mikro-orm/migrations';

export class Migration20261123210527_initial extends Migration {
  override name = 'Migration20261123210527_initial';

  override up(): void | Promise<void> {
    this.addSql(
      `create table \`runs\` (\`id\` int unsigned not null auto_increment primary key, \`source\` varchar(64) not null, \`trigger\` enum('manual','schedule','retry','replay','backfill') not null default 'manual', \`status\` enum('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED') not null default 'PENDING', \`plan\` json not null, \`stage\` enum('ingest','validate','transform','load') null, \`attempt\` int unsigned not null default 1, \`params\` json null, \`idempotency_key\` varchar(255) null, \`request_hash\` varchar(64) null, \`error\` json null, \`fetched\` bigint null, \`valid\` bigint null, \`rejected\` bigint null, \`rows\` json null, \`cancelled_by\` varchar(64) null, \`created_at\` datetime(3) not null, \`updated_at\` datetime(3) not null, \`started_at\` datetime(3) null, \`finished_at\` datetime(3) null, \`version\` int unsigned not null default 1) default character set utf8mb4 engine = InnoDB;`,
    );
    this.addSql(`alter table \`runs\` add unique \`runs_idempotency_key_unique\` (\`idempotency_key\`);`);
    this.addSql(
      `alter table \`runs\` add index \`runs_source_status_id_idx\` (\`source\`, \`status\`, \`id\`);`,
    );
    this.addSql(`alter table \`runs\` add index \`runs_source_id_idx\` (\`source\`, \`id\`);`);
    this.addSql(`alter table \`runs\` add index \`runs_status_id_idx\` (\`status\`, \`id\`);`);

    this.addSql(
      `create table \`jobs\` (\`id\` int unsigned not null auto_increment primary key, \`run_id\` int unsigned not null, \`stage\` enum('ingest','validate','transform','load') not null, \`run_attempt\` int unsigned not null default 1, \`status\` enum('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED') not null default 'PENDING', \`attempt\` int unsigned not null default 0, \`max_attempts\` int unsigned not null, \`queue_job_id\` varchar(128) not null, \`external_id\` varchar(255) null, \`heartbeat_at\` datetime(3) null, \`params\` json null, \`metrics\` json null, \`error\` json null, \`created_at\` datetime(3) not null, \`updated_at\` datetime(3) not null, \`started_at\` datetime(3) null, \`finished_at\` datetime(3) null, \`version\` int unsigned not null default 1) default character set utf8mb4 engine = InnoDB;`,
    );
    this.addSql(`alter table \`jobs\` add index \`jobs_run_id_index\` (\`run_id\`);`);
    this.addSql(
      `alter table \`jobs\` add index \`jobs_status_heartbeat_idx\` (\`status\`, \`heartbeat_at\`);`,
    );
    this.addSql(
      `alter table \`jobs\` add unique \`jobs_run_stage_attempt_unique\` (\`run_id\`, \`stage\`, \`run_attempt\`);`,
    );

    this.addSql(
      `create table \`lake_files\` (\`id\` int unsigned not null auto_increment primary key, \`uri\` varchar(768) not null, \`layer\` enum('raw','validated','rejected','curated') not null, \`table_name\` varchar(64) null, \`records\` bigint null, \`bytes\` bigint not null, \`sha256\` varchar(64) null, \`run_id\` int unsigned not null, \`produced_by_id\` int unsigned not null, \`created_at\` datetime(3) not null) default character set utf8mb4 engine = InnoDB;`,
    );
    this.addSql(`alter table \`lake_files\` add unique \`lake_files_uri_unique\` (\`uri\`);`);
    this.addSql(`alter table \`lake_files\` add index \`lake_files_run_id_index\` (\`run_id\`);`);
    this.addSql(
      `alter table \`lake_files\` add index \`lake_files_produced_by_id_index\` (\`produced_by_id\`);`,
    );
    this.addSql(`alter table \`lake_files\` add index \`lake_files_run_layer_idx\` (\`run_id\`, \`layer\`);`);

    this.addSql(
      `create table \`job_inputs\` (\`job_id\` int unsigned not null, \`lake_file_id\` int unsigned not null, primary key (\`job_id\`, \`lake_file_id\`)) default character set utf8mb4 engine = InnoDB;`,
    );
    this.addSql(`alter table \`job_inputs\` add index \`job_inputs_job_id_index\` (\`job_id\`);`);
    this.addSql(`alter table \`job_inputs\` add index \`job_inputs_lake_file_id_index\` (\`lake_file_id\`);`);

    this.addSql(
      `create table \`source_states\` (\`source\` varchar(64) not null, \`cursor\` varchar(1024) null, \`last_run_id\` int unsigned null, \`updated_at\` datetime(3) not null, \`version\` int unsigned not null default 1, primary key (\`source\`)) default character set utf8mb4 engine = InnoDB;`,
    );

    this.addSql(
      `alter table \`jobs\` add constraint \`jobs_run_id_foreign\` foreign key (\`run_id\`) references \`runs\` (\`id\`) on delete cascade;`,
    );

    this.addSql(
      `alter table \`lake_files\` add constraint \`lake_files_run_id_foreign\` foreign key (\`run_id\`) references \`runs\` (\`id\`) on delete cascade;`,
    );
    this.addSql(
      `alter table \`lake_files\` add constraint \`lake_files_produced_by_id_foreign\` foreign key (\`produced_by_id\`) references \`jobs\` (\`id\`) on delete cascade;`,
    );

    this.addSql(
      `alter table \`job_inputs\` add constraint \`job_inputs_job_id_foreign\` foreign key (\`job_id\`) references \`jobs\` (\`id\`) on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table \`job_inputs\` add constraint \`job_inputs_lake_file_id_foreign\` foreign key (\`lake_file_id\`) references \`lake_files\` (\`id\`) on update cascade on delete cascade;`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table \`jobs\` drop foreign key \`jobs_run_id_foreign\`;`);
    this.addSql(`alter table \`lake_files\` drop foreign key \`lake_files_run_id_foreign\`;`);
    this.addSql(`alter table \`lake_files\` drop foreign key \`lake_files_produced_by_id_foreign\`;`);
    this.addSql(`alter table \`job_inputs\` drop foreign key \`job_inputs_job_id_foreign\`;`);
    this.addSql(`alter table \`job_inputs\` drop foreign key \`job_inputs_lake_file_id_foreign\`;`);

    this.addSql(`drop table if exists \`runs\`;`);
    this.addSql(`drop table if exists \`jobs\`;`);
    this.addSql(`drop table if exists \`lake_files\`;`);
    this.addSql(`drop table if exists \`job_inputs\`;`);
    this.addSql(`drop table if exists \`source_states\`;`);
  }
}

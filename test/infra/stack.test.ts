// The synthesized template with cdk.json's defaults: the properties each part of the deployment promises.
import { Match } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRIC } from '../../contract/metrics.ts';
import { STAGES } from '../../contract/stages.ts';
import { EMBEDDED_BUDGET } from '../../infra/settings.ts';
import { handlerNodeFlags } from '../../service/invocation/local-invoker.ts';
import {
  cleanUp,
  dataStorePolicies,
  logicalId,
  resources,
  synthesize,
  type Resource,
  type Synthesized,
} from './synth.ts';

let s: Synthesized;
beforeAll(() => {
  s = synthesize();
});
afterAll(() => cleanUp(s));

const ref = (id: string) => ({ Ref: id });
const arn = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
const only = (found: Record<string, Resource>): Resource => {
  const values = Object.values(found);
  expect(values).toHaveLength(1);
  return values[0] as Resource;
};

describe('queue (ElastiCache)', () => {
  it('never evicts: BullMQ loses jobs under eviction', () => {
    s.template.hasResourceProperties('AWS::ElastiCache::ParameterGroup', {
      CacheParameterGroupFamily: 'valkey8',
      Properties: { 'maxmemory-policy': 'noeviction' },
    });
  });

  it('encrypts in transit and at rest, requires AUTH with the generated token, and is Multi-AZ', () => {
    const token = logicalId(s.stack, s.stack.queue.authToken);
    s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      TransitEncryptionEnabled: true,
      TransitEncryptionMode: 'required',
      AtRestEncryptionEnabled: true,
      AuthToken: { 'Fn::Join': ['', ['{{resolve:secretsmanager:', ref(token), ':SecretString:::}}']] },
      MultiAZEnabled: true,
      AutomaticFailoverEnabled: true,
      NumCacheClusters: 2,
      Port: 6380,
      CacheParameterGroupName: ref(logicalId(s.stack, s.stack.queue.node.findChild('Parameters'))),
    });
  });

  it('admits the two ECS services only', () => {
    const group = logicalId(s.stack, s.stack.queue.securityGroup);
    const sources = Object.values(resources(s.template, 'AWS::EC2::SecurityGroupIngress'))
      .filter((r) => JSON.stringify(r.Properties.GroupId).includes(group))
      .map((r) => ({
        from: r.Properties.SourceSecurityGroupId['Fn::GetAtt'][0] as string,
        port: r.Properties.FromPort,
      }));
    expect(sources).toEqual(
      [s.stack.service.api, s.stack.service.worker].map((service) => ({
        from: logicalId(s.stack, service.connections.securityGroups[0]),
        port: 6380,
      })),
    );
  });
});

describe('lake (S3)', () => {
  const lakeBucket = () => logicalId(s.stack, s.stack.lake.bucket);
  const logsBucket = () => logicalId(s.stack, s.stack.logs.bucket);

  it('is KMS-encrypted with its key, versioned, blocks public access and logs to the log bucket', () => {
    s.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: arn(logicalId(s.stack, s.stack.lake.key)),
            },
            BucketKeyEnabled: true,
          },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LoggingConfiguration: { DestinationBucketName: ref(logsBucket()), LogFilePrefix: 's3-access/lake/' },
    });
  });

  it('moves raw/ to Infrequent Access after 30 days, then to Glacier after 90', () => {
    const bucket = s.template.toJSON().Resources[lakeBucket()];
    const rules = bucket.Properties.LifecycleConfiguration.Rules as Resource[];
    const raw = rules.find((r) => r.Prefix === 'raw/');
    expect(raw).toMatchObject({
      Status: 'Enabled',
      Transitions: [
        { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
        { StorageClass: 'GLACIER', TransitionInDays: 90 },
      ],
    });
  });

  it('denies every request without TLS, on the lake and on the log bucket', () => {
    for (const bucket of [lakeBucket(), logsBucket()]) {
      s.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: ref(bucket),
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Principal: { AWS: '*' },
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });

  it('keeps the log bucket encrypted (SSE-S3, which S3 and ALB log delivery require) and private', () => {
    s.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, RestrictPublicBuckets: true },
      LifecycleConfiguration: { Rules: [Match.objectLike({ Id: 'age-out-logs' })] },
    });
  });

  it('deploys the Spark jobs under spark/ of the artifacts bucket', () => {
    s.template.hasResourceProperties('Custom::CDKBucketDeployment', {
      DestinationBucketName: ref(logicalId(s.stack, s.stack.artifacts.bucket)),
      DestinationBucketKeyPrefix: 'spark/',
      Prune: true,
    });
  });
});

describe('state (RDS MySQL)', () => {
  it('is MySQL 8.4, encrypted, Multi-AZ, backed up, protected from deletion, on a non-default port', () => {
    s.template.hasResourceProperties('AWS::RDS::DBInstance', {
      Engine: 'mysql',
      EngineVersion: '8.4.10',
      StorageEncrypted: true,
      MultiAZ: true,
      DeletionProtection: true,
      BackupRetentionPeriod: 7,
      Port: '3307',
      PubliclyAccessible: false,
      EnableCloudwatchLogsExports: ['error', 'slowquery'],
    });
  });

  it('requires TLS through its parameter group', () => {
    s.template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Family: 'mysql8.4',
      Parameters: { require_secure_transport: 'ON' },
    });
  });

  it('generates the afluente user into Secrets Manager and rotates it every 30 days', () => {
    const secret = only(
      s.template.findResources('AWS::SecretsManager::Secret', {
        Properties: { GenerateSecretString: { SecretStringTemplate: '{"username":"afluente"}' } },
      }),
    );
    expect(secret.Properties.GenerateSecretString.GenerateStringKey).toBe('password');
    s.template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
    });
  });

  it('admits the two ECS services and the rotation Lambda, nothing else', () => {
    const dbGroup = logicalId(s.stack, s.stack.state.instance.connections.securityGroups[0]);
    const sources = Object.values(resources(s.template, 'AWS::EC2::SecurityGroupIngress'))
      .filter((r) => JSON.stringify(r.Properties.GroupId).includes(dbGroup))
      .map((r) => r.Properties.SourceSecurityGroupId['Fn::GetAtt'][0] as string)
      .sort();
    const api = logicalId(s.stack, s.stack.service.api.connections.securityGroups[0]);
    const worker = logicalId(s.stack, s.stack.service.worker.connections.securityGroups[0]);
    expect(sources).toHaveLength(3);
    expect(sources).toEqual(expect.arrayContaining([api, worker]));
    expect(sources.find((g) => g !== api && g !== worker)).toMatch(/RotationSingleUser/);
  });
});

describe('events queue (SQS) and the Lambdas', () => {
  const events = () => logicalId(s.stack, s.stack.functions.eventsQueue);
  const dlq = () => logicalId(s.stack, s.stack.functions.deadLetterQueue);

  it('encrypts both queues, sends poison records to the DLQ, and denies requests without TLS', () => {
    s.template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: arn(dlq()), maxReceiveCount: 5 },
    });
    const queues = resources(s.template, 'AWS::SQS::Queue');
    expect(queues[dlq()]?.Properties.SqsManagedSseEnabled).toBe(true);
    for (const queue of [events(), dlq()]) {
      s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [ref(queue)],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });

  it('delivers every success and failure record of both functions to the events queue, with no Lambda retries', () => {
    for (const fn of [s.stack.functions.ingest, s.stack.functions.validate]) {
      s.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: ref(logicalId(s.stack, fn)),
        DestinationConfig: {
          OnSuccess: { Destination: arn(events()) },
          OnFailure: { Destination: arn(events()) },
        },
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 120,
      });
    }
  });

  it('runs both on nodejs24.x with a 15-minute timeout, reserved concurrency, and the service heap flags', () => {
    const nodeOptions = [...handlerNodeFlags(1024), '--enable-source-maps'].join(' ');
    for (const [fn, concurrency] of [
      [s.stack.functions.ingest, 10],
      [s.stack.functions.validate, 20],
    ] as const) {
      const resource = resources(s.template, 'AWS::Lambda::Function')[logicalId(s.stack, fn)];
      expect(resource?.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Handler: 'index.handler',
        Timeout: 900,
        MemorySize: 1024,
        ReservedConcurrentExecutions: concurrency,
        Environment: {
          Variables: {
            NODE_OPTIONS: nodeOptions,
            AFLUENTE_METRICS_EMF: 'true',
            AWS_EMF_NAMESPACE: 'Afluente',
          },
        },
      });
      // Outside the VPC: they pull public source APIs.
      expect(resource?.Properties.VpcConfig).toBeUndefined();
    }
  });

  it('lets ingest write only raw/, and validate read raw/ and write validated/ and rejected/', () => {
    const policies = resources(s.template, 'AWS::IAM::Policy');
    const objectGrants = (fn: typeof s.stack.functions.ingest) => {
      const role = logicalId(s.stack, fn.role);
      const policy = Object.values(policies).find(
        (p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([ref(role)]),
      );
      const statements = policy?.Properties.PolicyDocument.Statement as Resource[];
      return statements
        .filter((st) => [st.Action].flat().some((a: string) => /^s3:(Put|Get|Delete)Object$/.test(a)))
        .map((st) => ({
          actions: [st.Action].flat().sort(),
          prefixes: [st.Resource]
            .flat()
            .map((r) => r['Fn::Join'][1][1] as string)
            .sort(),
        }));
    };
    expect(objectGrants(s.stack.functions.ingest)).toEqual([
      {
        actions: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:PutObject'],
        prefixes: ['/raw/*'],
      },
    ]);
    expect(objectGrants(s.stack.functions.validate)).toEqual([
      { actions: ['s3:GetObject'], prefixes: ['/raw/*'] },
      {
        actions: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:PutObject'],
        prefixes: ['/rejected/*', '/validated/*'],
      },
    ]);
  });
});

const taskDefinition = (service: 'api' | 'worker'): Resource => {
  const definition = s.stack.service[service].taskDefinition;
  return resources(s.template, 'AWS::ECS::TaskDefinition')[logicalId(s.stack, definition)] as Resource;
};
const container = (service: 'api' | 'worker'): Resource =>
  taskDefinition(service).Properties.ContainerDefinitions[0] as Resource;
const environmentOf = (service: 'api' | 'worker'): Record<string, unknown> =>
  Object.fromEntries(
    (container(service).Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
  );
/** The custom resource that reads the ARN of the admin secret Redshift manages (GetNamespace). */
const adminSecretLookup = (): string => {
  const found = s.template.findResources('Custom::AWS', {
    Properties: { Create: Match.stringLikeRegexp('"action":"getNamespace"') },
  });
  expect(Object.keys(found)).toHaveLength(1);
  return Object.keys(found)[0] as string;
};
const policyStatements = (role: string): Resource[] =>
  Object.values(resources(s.template, 'AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([ref(role)]))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Resource[]);

describe('compute (ECS)', () => {
  const containers = () =>
    Object.values(resources(s.template, 'AWS::ECS::TaskDefinition')).map(
      (t) => t.Properties.ContainerDefinitions[0] as Resource,
    );

  it('enables enhanced Container Insights on the cluster', () => {
    s.template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enhanced' }],
    });
  });

  it('health-checks /health/ready on the ALB target group and drains on deregistration', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/health/ready',
      Port: 8080,
      TargetType: 'ip',
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '30' }]),
    });
  });

  it('keeps the ALB internal, with access logs in the log bucket, on HTTP without a certificate', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internal',
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: ref(logicalId(s.stack, s.stack.logs.bucket)) },
      ]),
    });
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
  });

  it('runs api (api,scheduler) and worker (worker) from one image', () => {
    const roles = containers().map(
      (c) =>
        (c.Environment as { Name: string; Value: unknown }[]).find((e) => e.Name === 'AFLUENTE_ROLES')?.Value,
    );
    expect(roles.sort()).toEqual(['api,scheduler', 'worker']);
    const images = new Set(containers().map((c) => JSON.stringify(c.Image)));
    expect(images.size).toBe(1);
  });

  it('passes the three secrets as ECS secrets from Secrets Manager, and the warehouse password to the worker', () => {
    const rds = logicalId(
      s.stack,
      s.stack.state.node.findChild('Instance').node.findChild('Secret').node.findChild('Attachment'),
    );
    const expected = [
      { Name: 'AFLUENTE_MYSQL_PASSWORD', ValueFrom: { 'Fn::Join': ['', [ref(rds), ':password::']] } },
      { Name: 'AFLUENTE_REDIS_PASSWORD', ValueFrom: ref(logicalId(s.stack, s.stack.queue.authToken)) },
      {
        Name: 'AFLUENTE_API_TOKENS',
        ValueFrom: { 'Fn::Join': ['', [ref(logicalId(s.stack, s.stack.service.apiTokens)), ':token::']] },
      },
    ];
    const warehouse = {
      Name: 'AFLUENTE_WAREHOUSE_PASSWORD',
      ValueFrom: {
        'Fn::Join': [
          '',
          [{ 'Fn::GetAtt': [adminSecretLookup(), 'namespace.adminPasswordSecretArn'] }, ':password::'],
        ],
      },
    };
    expect(container('api').Secrets).toEqual(expected);
    expect(container('worker').Secrets).toEqual([...expected, warehouse]);
    s.template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { GenerateStringKey: 'token', ExcludePunctuation: true, PasswordLength: 48 },
    });
  });

  it('puts no password, token or secret in plain environment, and no credentials in URLs', () => {
    for (const container of containers()) {
      const env = container.Environment as { Name: string; Value: unknown }[];
      expect(env.map((e) => e.Name).filter((n) => /PASSWORD|TOKEN|SECRET|KEY/.test(n))).toEqual([]);
      const mysql = JSON.stringify(env.find((e) => e.Name === 'AFLUENTE_MYSQL_URL')?.Value);
      expect(mysql).toContain('mysql://afluente@');
      const redis = JSON.stringify(env.find((e) => e.Name === 'AFLUENTE_REDIS_URL')?.Value);
      expect(redis).toContain('rediss://');
      const warehouse = JSON.stringify(env.find((e) => e.Name === 'AFLUENTE_WAREHOUSE_URL')?.Value);
      expect(warehouse).toContain('redshift://afluente_admin@');
      for (const url of [mysql, redis, warehouse]) expect(url).not.toMatch(/:\/\/[^@"]*:[^@"]*@/);
    }
  });

  it('sets only names the service knows (service/config/env.ts)', () => {
    const schema = readFileSync(new URL('../../service/config/env.ts', import.meta.url), 'utf8');
    const known = new Set([...schema.matchAll(/^\s{2}(AFLUENTE_[A-Z0-9_]+): Type\./gm)].map((m) => m[1]));
    expect(known.size).toBeGreaterThan(40);
    for (const container of containers()) {
      const names = [...container.Environment, ...container.Secrets].map((e: { Name: string }) => e.Name);
      expect(names.filter((n) => n.startsWith('AFLUENTE_') && !known.has(n))).toEqual([]);
      expect(names).toEqual(
        expect.arrayContaining(['AFLUENTE_EMR_SECURITY_CONFIGURATION', 'AFLUENTE_EMR_SECURITY_GROUP']),
      );
    }
  });

  it('health-checks the container and gives it 60 s to drain after SIGTERM', () => {
    for (const container of containers()) {
      expect(container.HealthCheck.Command).toEqual([
        'CMD',
        'node',
        '-e',
        "fetch('http://127.0.0.1:8080/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
      ]);
      expect(container.StopTimeout).toBe(60);
      expect(container.LogConfiguration.LogDriver).toBe('awslogs');
      expect(container.Environment).toEqual(
        expect.arrayContaining([{ Name: 'AFLUENTE_SHUTDOWN_GRACE_MS', Value: '25000' }]),
      );
    }
  });

  it('scales both services on CPU, and the worker on the queue depth metric without dimensions', () => {
    const policies = Object.values(resources(s.template, 'AWS::ApplicationAutoScaling::ScalingPolicy'));
    const cpu = policies.filter(
      (p) =>
        p.Properties.TargetTrackingScalingPolicyConfiguration?.PredefinedMetricSpecification
          ?.PredefinedMetricType === 'ECSServiceAverageCPUUtilization',
    );
    expect(cpu).toHaveLength(2);
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Afluente',
      MetricName: METRIC.queueWaiting,
      Dimensions: Match.absent(),
      Threshold: 10,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [Match.anyValue()],
    });
  });
});

describe('the worker and its embedded engine', () => {
  it('sizes the worker for the embedded steps: 2 vCPU, 8 GiB, 60 GiB of ephemeral storage, an init process', () => {
    expect(taskDefinition('worker').Properties).toMatchObject({
      Cpu: '2048',
      Memory: '8192',
      EphemeralStorage: { SizeInGiB: 60 },
    });
    // An init process as PID 1 forwards SIGTERM to node and reaps what a killed step leaves behind.
    expect(container('worker').LinuxParameters).toMatchObject({ InitProcessEnabled: true });
    expect(container('api').LinuxParameters).toBeUndefined();
    // The api runs no step: Fargate's default 20 GiB.
    expect(taskDefinition('api').Properties).toMatchObject({ Cpu: '512', Memory: '1024' });
    expect(taskDefinition('api').Properties.EphemeralStorage).toBeUndefined();
  });

  it("sets the engine's settings on the worker only, within the task's memory and disk", () => {
    const env = environmentOf('worker');
    expect(env).toMatchObject({
      AFLUENTE_ROLES: 'worker',
      AFLUENTE_EMBEDDED_MAX_BYTES: String(2 * 1024 ** 3),
      AFLUENTE_EMBEDDED_MEMORY_LIMIT: '3072MiB',
      AFLUENTE_EMBEDDED_THREADS: '2',
      AFLUENTE_WORKER_CONCURRENCY: String(EMBEDDED_BUDGET.stepsPerTask),
    });
    // The venv, the code and the temp folder are the image's (the Dockerfile's ENV), not the task's.
    expect(Object.keys(env).filter((n) => /^AFLUENTE_(EMBEDDED_VENV|SPARK_)/.test(n))).toEqual([]);
    expect(Object.keys(environmentOf('api')).filter((n) => /EMBEDDED|WORKER_CONCURRENCY/.test(n))).toEqual(
      [],
    );

    const { stepsPerTask, serviceMiB, stepOverheadMiB, stepDiskFactor, baseDiskGiB } = EMBEDDED_BUDGET;
    const limitMiB = Number(/^(\d+)MiB$/.exec(env.AFLUENTE_EMBEDDED_MEMORY_LIMIT as string)?.[1]);
    const memory = Number(taskDefinition('worker').Properties.Memory);
    expect(memory).toBeGreaterThanOrEqual(serviceMiB + stepsPerTask * (limitMiB + stepOverheadMiB));
    const disk = taskDefinition('worker').Properties.EphemeralStorage.SizeInGiB as number;
    const maxGiB = Number(env.AFLUENTE_EMBEDDED_MAX_BYTES) / 1024 ** 3;
    expect(disk).toBeGreaterThanOrEqual(baseDiskGiB + stepsPerTask * stepDiskFactor * maxGiB);
  });

  it('lets the worker reach the warehouse on 5439, next to the EMR clusters and nothing else', () => {
    const group = logicalId(s.stack, s.stack.warehouse.securityGroup);
    const sources = Object.values(resources(s.template, 'AWS::EC2::SecurityGroupIngress'))
      .filter((r) => JSON.stringify(r.Properties.GroupId).includes(group))
      .map((r) => ({
        from: r.Properties.SourceSecurityGroupId['Fn::GetAtt'][0] as string,
        ports: [r.Properties.FromPort, r.Properties.ToPort],
      }))
      .sort((a, b) => a.from.localeCompare(b.from));
    expect(sources).toEqual(
      [s.stack.emr.securityGroup, s.stack.service.worker.connections.securityGroups[0]]
        .map((g) => ({ from: logicalId(s.stack, g), ports: [5439, 5439] }))
        .sort((a, b) => a.from.localeCompare(b.from)),
    );
  });

  it('gives the worker the password of the admin secret Redshift manages, read at deploy with GetNamespace', () => {
    const lookup = s.template.toJSON().Resources[adminSecretLookup()];
    expect(JSON.parse(lookup.Properties.Create as string)).toEqual({
      service: 'RedshiftServerless',
      action: 'getNamespace',
      parameters: { namespaceName: 'afluente' },
      physicalResourceId: { id: 'afluente-admin-secret' },
      outputPaths: ['namespace.adminPasswordSecretArn'],
    });
    expect(lookup.Properties.Update).toBe(lookup.Properties.Create);
    expect(lookup.Properties.InstallLatestAwsSdk).toBe(false);
    expect(lookup.DependsOn).toContain(logicalId(s.stack, s.stack.warehouse.namespace));
    // The lookup may read this namespace and nothing else.
    const lookupPolicy = only(
      s.template.findResources('AWS::IAM::Policy', {
        Properties: {
          PolicyDocument: {
            Statement: Match.arrayWith([Match.objectLike({ Action: 'redshift-serverless:GetNamespace' })]),
          },
        },
      }),
    );
    expect(lookupPolicy.Properties.PolicyDocument.Statement).toEqual([
      {
        Action: 'redshift-serverless:GetNamespace',
        Effect: 'Allow',
        Resource: {
          'Fn::GetAtt': [logicalId(s.stack, s.stack.warehouse.namespace), 'Namespace.NamespaceArn'],
        },
      },
    ]);
    // ECS reads the secret with the worker's execution role, the api's gets no right to it.
    const secretArn = { 'Fn::GetAtt': [adminSecretLookup(), 'namespace.adminPasswordSecretArn'] };
    const reads = (service: 'api' | 'worker') =>
      policyStatements(logicalId(s.stack, s.stack.service[service].taskDefinition.executionRole))
        .filter((st) => [st.Resource].flat().some((r) => JSON.stringify(r) === JSON.stringify(secretArn)))
        .flatMap((st) => [st.Action].flat());
    expect(reads('worker')).toContain('secretsmanager:GetSecretValue');
    expect(reads('api')).toEqual([]);
    // The URL names the admin, whose password this is; the COPY role reads curated/ for the COPY.
    expect(JSON.stringify(environmentOf('worker').AFLUENTE_WAREHOUSE_URL)).toContain(
      'redshift://afluente_admin@',
    );
    expect(environmentOf('worker').AFLUENTE_WAREHOUSE_COPY_ROLE_ARN).toEqual(
      arn(logicalId(s.stack, s.stack.warehouse.copyRole)),
    );
  });

  it("lets the worker stage the engine's inputs and upload its outputs: validated/ and curated/ in, curated/ and steps/ out", () => {
    const statements = policyStatements(logicalId(s.stack, s.stack.service.taskRole));
    const prefixes = (action: string): string[] =>
      statements
        .filter((st) => [st.Action].flat().includes(action))
        .flatMap((st) => [st.Resource].flat())
        .map((r: { 'Fn::Join'?: [string, unknown[]] }) => r['Fn::Join']?.[1][1])
        .filter((p): p is string => typeof p === 'string');
    expect(prefixes('s3:GetObject')).toEqual(expect.arrayContaining(['/validated/*', '/curated/*']));
    expect(prefixes('s3:PutObject')).toEqual(expect.arrayContaining(['/curated/*', '/steps/*']));
    const kms = statements.find(
      (st) => JSON.stringify(st.Resource) === JSON.stringify(arn(logicalId(s.stack, s.stack.lake.key))),
    );
    expect(kms?.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
  });
});

describe('warehouse (Redshift Serverless)', () => {
  it('is private, TLS-only, logs user activity, and routes COPY through the VPC', () => {
    s.template.hasResourceProperties('AWS::RedshiftServerless::Workgroup', {
      PubliclyAccessible: false,
      EnhancedVpcRouting: true,
      Port: 5439,
      ConfigParameters: Match.arrayWith([
        { ParameterKey: 'require_ssl', ParameterValue: 'true' },
        { ParameterKey: 'enable_user_activity_logging', ParameterValue: 'true' },
      ]),
    });
  });

  it('encrypts the namespace with its KMS key, exports audit logs, and attaches the COPY role', () => {
    const copyRole = arn(logicalId(s.stack, s.stack.warehouse.copyRole));
    s.template.hasResourceProperties('AWS::RedshiftServerless::Namespace', {
      KmsKeyId: arn(logicalId(s.stack, s.stack.warehouse.key)),
      LogExports: ['userlog', 'connectionlog', 'useractivitylog'],
      ManageAdminPassword: true,
      IamRoles: [copyRole],
      DefaultIamRoleArn: copyRole,
    });
    s.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'redshift.amazonaws.com' } })],
      },
    });
  });
});

describe('EMR', () => {
  it('has a security configuration with at-rest (SSE-KMS, local disk) and in-transit encryption', () => {
    const key = arn(logicalId(s.stack, s.stack.lake.key));
    const artifacts = logicalId(s.stack, s.stack.artifacts.bucket);
    s.template.hasResourceProperties('AWS::EMR::SecurityConfiguration', {
      SecurityConfiguration: {
        EncryptionConfiguration: {
          EnableAtRestEncryption: true,
          EnableInTransitEncryption: true,
          AtRestEncryptionConfiguration: {
            S3EncryptionConfiguration: { EncryptionMode: 'SSE-KMS', AwsKmsKey: key },
            LocalDiskEncryptionConfiguration: { EncryptionKeyProviderType: 'AwsKms', AwsKmsKey: key },
          },
          InTransitEncryptionConfiguration: {
            TLSCertificateConfiguration: {
              CertificateProviderType: 'PEM',
              S3Object: { 'Fn::Join': ['', ['s3://', ref(artifacts), '/emr/tls/certs.zip']] },
            },
          },
        },
      },
    });
  });

  it('lets the warehouse admit the EMR security group on 5439 only', () => {
    s.template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.warehouse.securityGroup), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.emr.securityGroup), 'GroupId'] },
      FromPort: 5439,
      ToPort: 5439,
    });
  });

  it('scopes the service to clusters tagged app=afluente and starts them only with that tag', () => {
    const taskPolicy = Object.values(resources(s.template, 'AWS::IAM::Policy')).find((p) =>
      JSON.stringify(p.Properties.Roles).includes(logicalId(s.stack, s.stack.service.taskRole)),
    );
    const statements = taskPolicy?.Properties.PolicyDocument.Statement as Resource[];
    const emr = statements.filter((st) => JSON.stringify(st.Action).includes('elasticmapreduce:'));
    expect(emr).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Action: expect.arrayContaining([
            'elasticmapreduce:AddJobFlowSteps',
            'elasticmapreduce:TerminateJobFlows',
          ]),
          Condition: { StringEquals: { 'aws:ResourceTag/app': 'afluente' } },
        }),
        expect.objectContaining({
          Action: ['elasticmapreduce:AddTags', 'elasticmapreduce:RunJobFlow'],
          Condition: { StringEquals: { 'aws:RequestTag/app': 'afluente' } },
        }),
      ]),
    );
    const passRole = statements.find((st) => st.Action === 'iam:PassRole');
    expect(passRole?.Resource).toEqual(
      [
        arn(logicalId(s.stack, s.stack.emr.instanceRole)),
        arn(logicalId(s.stack, s.stack.emr.serviceRole)),
      ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    );
  });
});

describe('network', () => {
  it('spans three zones with one NAT gateway and flow logs', () => {
    s.template.resourceCountIs('AWS::EC2::Subnet', 9);
    s.template.resourceCountIs('AWS::EC2::NatGateway', 1);
    s.template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', ResourceType: 'VPC' });
  });

  it('has the S3 gateway endpoint and an interface endpoint for each AWS API used', () => {
    // `com.amazonaws.<region>.<service>`, a literal or (for the gateway) a join ending in `.<service>`.
    const names = Object.values(resources(s.template, 'AWS::EC2::VPCEndpoint')).map((e) => {
      const name = e.Properties.ServiceName as string | { 'Fn::Join': [string, string[]] };
      return typeof name === 'string'
        ? name.replace(/^com\.amazonaws\.[a-z0-9-]+\./, '')
        : (name['Fn::Join'][1].at(-1) ?? '').replace(/^\./, '');
    });
    expect(names.sort()).toEqual(
      [
        's3',
        'sqs',
        'lambda',
        'elasticmapreduce',
        'secretsmanager',
        'ecr.api',
        'ecr.dkr',
        'logs',
        'monitoring',
        'sts',
        'kms',
        'redshift-serverless',
      ].sort(),
    );
  });
});

describe('monitoring', () => {
  const topic = () => logicalId(s.stack, s.stack.monitoring.topic);

  it('sends alarms to a KMS-encrypted, TLS-only SNS topic', () => {
    s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    s.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [ref(topic())],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    s.template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('alarms on a failed run, a run past its deadline, dead letters, and an unhealthy API', () => {
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Afluente',
      MetricName: 'RunsFailed',
      Dimensions: Match.absent(),
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [ref(topic())],
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'Afluente',
      MetricName: 'OldestActiveRunAge',
      Dimensions: Match.absent(),
      Threshold: 6 * 3600,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [ref(topic())],
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [logicalId(s.stack, s.stack.functions.deadLetterQueue), 'QueueName'] },
        },
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [ref(topic())],
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HealthyHostCount',
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
    });
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'UnHealthyHostCount',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    const composite = only(resources(s.template, 'AWS::CloudWatch::CompositeAlarm'));
    expect(composite.Properties.AlarmActions).toEqual([ref(topic())]);
    expect(JSON.stringify(composite.Properties.AlarmRule)).toMatch(/ALARM\(.*\) OR ALARM\(/);
  });

  it('shows every contract metric on the dashboard, stage durations per stage', () => {
    const dashboard = only(resources(s.template, 'AWS::CloudWatch::Dashboard'));
    const body = (dashboard.Properties.DashboardBody['Fn::Join'][1] as unknown[])
      .map((part) => (typeof part === 'string' ? part : 'TOKEN'))
      .join('');
    const widgets = (JSON.parse(body) as { widgets: { properties: { metrics?: unknown[][] } }[] }).widgets;
    const metrics = widgets.flatMap((w) => w.properties.metrics ?? []);
    const named = (namespace: string, name: string) =>
      metrics.filter((m) => m[0] === namespace && m[1] === name);
    for (const name of Object.values(METRIC)) expect(named('Afluente', name).length).toBeGreaterThan(0);
    for (const stage of STAGES) {
      expect(named('Afluente', 'StageDuration').some((m) => m[2] === 'Stage' && m[3] === stage)).toBe(true);
    }
    expect(named('AWS/Lambda', 'Errors')).toHaveLength(2);
    expect(named('AWS/SQS', 'ApproximateNumberOfMessagesVisible')).toHaveLength(2);
    expect(metrics.filter((m) => m[1] === 'StepsFailed').length).toBe(3);
  });
});

describe('data retention (default: keep)', () => {
  it('retains the buckets, the database, the queue store, the warehouse and the keys', () => {
    const json = s.template.toJSON().Resources as Record<string, { DeletionPolicy?: string }>;
    const flowLogs = logicalId(s.stack, s.stack.network.node.findChild('FlowLogs'));
    const policies = { ...dataStorePolicies(s), [flowLogs]: json[flowLogs]?.DeletionPolicy };
    expect(Object.keys(policies)).toHaveLength(9);
    for (const [id, policy] of Object.entries(policies))
      expect({ id, policy }).toEqual({ id, policy: 'Retain' });
    s.template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
  });
});

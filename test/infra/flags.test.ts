// The template with every context flag away from its default, given as strings the way `-c key=value` gives them.
import { Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanUp,
  dataStorePolicies,
  logicalId,
  resources,
  synthesize,
  type Resource,
  type Synthesized,
} from './synth.ts';

const SOURCE_SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:github-AbCdEf';
const FLAGS = {
  'afluente:stackName': 'AfluenteDev',
  'afluente:retainData': 'false',
  'afluente:alarmEmail': 'ops@example.com',
  'afluente:emrClusterId': 'j-2AXXXXXXGAPLF',
  'afluente:certificateArn': 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d',
  'afluente:emrTlsCertificatesUri': 's3://example-certs/emr/certs.zip',
  'afluente:runDeadlineHours': '3',
  'afluente:natGateways': '2',
  'afluente:interfaceEndpoints': 'false',
  'afluente:sourceSecrets': JSON.stringify({ GITHUB_TOKEN: `${SOURCE_SECRET}#token` }),
  'afluente:workerCpu': '4096',
  'afluente:workerMemoryMiB': '16384',
  'afluente:workerEphemeralStorageGiB': '100',
  'afluente:embeddedMaxBytes': '4294967296',
  'afluente:embeddedMemoryLimitMiB': '6144',
  'afluente:embeddedThreads': '3',
};

let s: Synthesized;
beforeAll(() => {
  s = synthesize({ context: FLAGS });
});
afterAll(() => cleanUp(s));

const policyOf = (roleId: string): Resource[] => {
  const policy = Object.values(resources(s.template, 'AWS::IAM::Policy')).find((p) =>
    JSON.stringify(p.Properties.Roles).includes(roleId),
  );
  return policy?.Properties.PolicyDocument.Statement as Resource[];
};
const environmentOf = (container: Resource) =>
  Object.fromEntries(
    (container.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
  );

describe('afluente:retainData=false', () => {
  it('deletes the data stores and keys with the stack, and empties the buckets first', () => {
    const policies = dataStorePolicies(s);
    expect(Object.keys(policies)).toHaveLength(8);
    for (const [id, policy] of Object.entries(policies))
      expect({ id, policy }).toEqual({ id, policy: 'Delete' });
    s.template.resourceCountIs('Custom::S3AutoDeleteObjects', 3);
    s.template.hasResourceProperties('AWS::RDS::DBInstance', { DeletionProtection: false });
  });
});

describe('the other flags', () => {
  it('subscribes the alarm email', () => {
    s.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: logicalId(s.stack, s.stack.monitoring.topic) },
    });
  });

  it('runs steps on the existing EMR cluster, without the rights to start clusters', () => {
    for (const definition of Object.values(resources(s.template, 'AWS::ECS::TaskDefinition'))) {
      expect(environmentOf(definition.Properties.ContainerDefinitions[0]).AFLUENTE_EMR_CLUSTER_ID).toBe(
        'j-2AXXXXXXGAPLF',
      );
    }
    const statements = policyOf(logicalId(s.stack, s.stack.service.taskRole));
    const existing = statements.find((st) =>
      JSON.stringify(st.Resource).includes(':cluster/j-2AXXXXXXGAPLF'),
    );
    expect(existing?.Action).toContain('elasticmapreduce:AddJobFlowSteps');
    expect(existing?.Condition).toBeUndefined();
    expect(JSON.stringify(statements)).not.toContain('elasticmapreduce:RunJobFlow');
    expect(JSON.stringify(statements)).not.toContain('iam:PassRole');
  });

  it('listens on HTTPS 443 with the certificate', () => {
    s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: FLAGS['afluente:certificateArn'] }],
      SslPolicy: Match.stringLikeRegexp('^ELBSecurityPolicy-TLS13'),
    });
    s.template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.40.0.0/16', FromPort: 443, ToPort: 443 })],
    });
  });

  it('reads the EMR TLS certificates from the given URI', () => {
    s.template.hasResourceProperties('AWS::EMR::SecurityConfiguration', {
      SecurityConfiguration: {
        EncryptionConfiguration: {
          InTransitEncryptionConfiguration: {
            TLSCertificateConfiguration: { S3Object: 's3://example-certs/emr/certs.zip' },
          },
        },
      },
    });
    const statements = policyOf(logicalId(s.stack, s.stack.emr.instanceRole));
    const reads = statements
      .filter((st) => st.Action === 's3:GetObject')
      .flatMap((st) => [st.Resource].flat());
    expect(reads).toContainEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::example-certs/emr/certs.zip']],
    });
  });

  it('alarms on a run older than three hours', () => {
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'OldestActiveRunAge',
      Threshold: 3 * 3600,
    });
  });

  it('has two NAT gateways and no interface endpoints (only the S3 gateway)', () => {
    s.template.resourceCountIs('AWS::EC2::NatGateway', 2);
    s.template.resourceCountIs('AWS::EC2::VPCEndpoint', 1);
  });

  it('gives the ingest function its source secret references and read access to exactly those secrets', () => {
    const fn = resources(s.template, 'AWS::Lambda::Function')[logicalId(s.stack, s.stack.functions.ingest)];
    expect(JSON.parse(fn?.Properties.Environment.Variables.AFLUENTE_SECRET_ENV as string)).toEqual({
      GITHUB_TOKEN: `${SOURCE_SECRET}#token`,
    });
    const statements = policyOf(logicalId(s.stack, s.stack.functions.ingest.role));
    expect(statements).toEqual(
      expect.arrayContaining([
        { Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: SOURCE_SECRET },
      ]),
    );
  });

  it("sizes the worker and sets the embedded engine's limits from the worker flags", () => {
    const worker = resources(s.template, 'AWS::ECS::TaskDefinition')[
      logicalId(s.stack, s.stack.service.worker.taskDefinition)
    ];
    expect(worker?.Properties).toMatchObject({
      Cpu: '4096',
      Memory: '16384',
      EphemeralStorage: { SizeInGiB: 100 },
    });
    expect(environmentOf(worker?.Properties.ContainerDefinitions[0])).toMatchObject({
      AFLUENTE_EMBEDDED_MAX_BYTES: '4294967296',
      AFLUENTE_EMBEDDED_MEMORY_LIMIT: '6144MiB',
      AFLUENTE_EMBEDDED_THREADS: '3',
    });
  });

  it('names the stack and its named resources after afluente:stackName', () => {
    expect(s.stack.stackName).toBe('AfluenteDev');
    s.template.hasResourceProperties('AWS::RDS::DBInstance', { DBInstanceIdentifier: 'afluentedev-state' });
    s.template.hasResourceProperties('AWS::RedshiftServerless::Workgroup', { WorkgroupName: 'afluentedev' });
    s.template.hasResourceProperties('Custom::AWS', {
      Create: Match.stringLikeRegexp('"parameters":\\{"namespaceName":"afluentedev"\\}'),
    });
  });

  it('still passes the cdk-nag AwsSolutions checks', () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(s.app);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources[0]?.constructPath}`)).toEqual(
      [],
    );
  });
});

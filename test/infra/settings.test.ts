// The context flags: cdk.json's defaults, string values from `-c`, and refusals at synth instead of at deploy.
import { Construct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { environment } from '../../infra/afluente-app.ts';
import { readCdkJson } from '../../infra/cdk-json.ts';
import { CONTEXT, readSettings, SettingsError } from '../../infra/settings.ts';

// A bare root construct: an App would make a temporary output folder for every case.
const settingsOf = (context: Record<string, unknown>) => {
  const root = new Construct(undefined as unknown as Construct, '');
  for (const [key, value] of Object.entries({ ...readCdkJson().context, ...context }))
    root.node.setContext(key, value);
  return readSettings(root.node);
};

describe('context flags', () => {
  it('gives every flag a default in cdk.json', () => {
    const { context } = readCdkJson();
    for (const key of Object.values(CONTEXT)) expect(context).toHaveProperty([key]);
  });

  it('reads cdk.json as the defaults the README documents', () => {
    expect(settingsOf({})).toEqual({
      stackName: 'Afluente',
      account: undefined,
      region: undefined,
      retainData: true,
      alarmEmail: undefined,
      emrClusterId: undefined,
      certificateArn: undefined,
      emrTlsCertificatesUri: undefined,
      runDeadlineHours: 6,
      natGateways: 1,
      interfaceEndpoints: true,
      availabilityZones: undefined,
      sourceSecrets: {},
      workerCpu: 2048,
      workerMemoryMiB: 8192,
      workerEphemeralStorageGiB: 60,
      embeddedMaxBytes: 2 * 1024 ** 3,
      embeddedMemoryLimitMiB: 3072,
      // Not set in cdk.json: the worker's vCPUs.
      embeddedThreads: 2,
      nag: true,
    });
  });

  it('takes the strings `-c key=value` passes', () => {
    const settings = settingsOf({
      'afluente:retainData': 'false',
      'afluente:runDeadlineHours': '12',
      'afluente:natGateways': '3',
      'afluente:availabilityZones': 'eu-west-1a, eu-west-1b,eu-west-1c',
      'afluente:sourceSecrets': '{"API_KEY":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf"}',
      'afluente:workerCpu': '4096',
      'afluente:workerMemoryMiB': '16384',
      'afluente:workerEphemeralStorageGiB': '120',
      'afluente:embeddedMaxBytes': '5368709120',
      'afluente:embeddedMemoryLimitMiB': '6144',
    });
    expect(settings).toMatchObject({
      workerCpu: 4096,
      workerMemoryMiB: 16384,
      workerEphemeralStorageGiB: 120,
      embeddedMaxBytes: 5 * 1024 ** 3,
      embeddedMemoryLimitMiB: 6144,
      // Follows the worker's vCPUs unless set.
      embeddedThreads: 4,
      retainData: false,
      runDeadlineHours: 12,
      natGateways: 3,
      availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
      sourceSecrets: { API_KEY: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:k-AbCdEf' },
    });
  });

  it.each([
    ['afluente:retainData', 'no', /true or false/],
    ['afluente:emrClusterId', 'cluster-1', /an EMR cluster id/],
    ['afluente:certificateArn', 'arn:aws:iam::123456789012:role/x', /an ACM certificate ARN/],
    ['afluente:emrTlsCertificatesUri', 'https://example.com/certs.zip', /s3:\/\/bucket\/key\.zip/],
    ['afluente:runDeadlineHours', '0', /hours from 1 to 168/],
    ['afluente:natGateways', '0', /an integer from 1 to 3/],
    ['afluente:availabilityZones', 'eu-west-1a,eu-west-1b', /three comma-separated zones/],
    ['afluente:sourceSecrets', '{"TOKEN":"my-secret"}', /full secret ARN/],
    ['afluente:alarmEmail', 'ops', /an email address/],
    ['afluente:region', 'Europe', /a region such as/],
    ['afluente:workerCpu', '3000', /one of Fargate's task sizes/],
    ['afluente:workerMemoryMiB', '20480', /a memory size Fargate pairs with 2048 CPU units/],
    ['afluente:workerEphemeralStorageGiB', '20', /GiB from 21 to 200/],
    ['afluente:embeddedMaxBytes', '1.5', /bytes, at least 0/],
    ['afluente:embeddedMemoryLimitMiB', '64', /MiB, at least 128/],
    ['afluente:embeddedThreads', '2000', /from 0 to 1024/],
    // The budget: two embedded steps at once must fit the worker task.
    ['afluente:workerMemoryMiB', '6144', /at least 8192 MiB: 1024 for the service and 2 embedded steps/],
    ['afluente:embeddedMemoryLimitMiB', '4096', /workerMemoryMiB must be at least 10240 MiB/],
    ['afluente:embeddedMaxBytes', String(8 * 1024 ** 3), /at least 84 GiB: 2 embedded steps of 5 ×/],
    ['afluente:workerEphemeralStorageGiB', '21', /at least 24 GiB/],
  ])('refuses %s=%s', (key, value, message) => {
    expect(() => settingsOf({ [key]: value })).toThrow(SettingsError);
    expect(() => settingsOf({ [key]: value })).toThrow(message);
  });

  it('takes 0 embedded threads as every core, and a worker as big as Fargate allows', () => {
    expect(settingsOf({ 'afluente:embeddedThreads': 0 }).embeddedThreads).toBe(0);
    const big = settingsOf({
      'afluente:workerCpu': 16384,
      'afluente:workerMemoryMiB': 122880,
      'afluente:workerEphemeralStorageGiB': 200,
      'afluente:embeddedMemoryLimitMiB': 58368,
    });
    expect(big).toMatchObject({ workerCpu: 16384, embeddedThreads: 16, embeddedMemoryLimitMiB: 58368 });
  });

  it('takes the region from the flag first, and never leaves it open', () => {
    const base = settingsOf({});
    expect(environment({ ...base, region: 'ap-southeast-2', account: '123456789012' })).toEqual({
      account: '123456789012',
      region: 'ap-southeast-2',
    });
    const saved = { ...process.env };
    try {
      for (const key of ['CDK_DEFAULT_ACCOUNT', 'CDK_DEFAULT_REGION', 'AWS_REGION', 'AWS_DEFAULT_REGION'])
        delete process.env[key];
      expect(environment(base)).toEqual({ region: 'us-east-1' });
      process.env.AWS_REGION = 'eu-central-1';
      expect(environment(base)).toEqual({ region: 'eu-central-1' });
    } finally {
      process.env = saved;
    }
  });
});

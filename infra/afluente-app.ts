import { Validations, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AfluenteStack } from './afluente-stack.ts';
import { readSettings, type AfluenteSettings } from './settings.ts';

/**
 * Adds the afluente stack to an app, configured by the app's `afluente:*` context, and registers the cdk-nag
 * AwsSolutions checks (unless `afluente:nag` is false), which fail the synth on an unacknowledged error.
 * infra/app.ts calls this for `cdk synth`; the tests call it on an app of their own.
 */
export function addAfluenteStack(app: App): AfluenteStack {
  const settings = readSettings(app.node);
  const stack = new AfluenteStack(app, 'Afluente', {
    stackName: settings.stackName,
    description:
      'afluente: HTTP APIs into an S3 data lake and a Redshift warehouse, with a durable run record',
    env: environment(settings),
    settings,
  });
  if (settings.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return stack;
}

/**
 * The stack's environment. The region must be concrete (ALB access logging grants the region's ELB account), so
 * it falls back from the context flag to the CLI's profile, the usual AWS variables, and us-east-1 last. The
 * account may stay open: the template then uses AWS::AccountId, and the stack deploys to any account.
 */
export function environment(settings: AfluenteSettings): { account?: string; region: string } {
  const account = settings.account ?? process.env.CDK_DEFAULT_ACCOUNT;
  const region =
    settings.region ??
    process.env.CDK_DEFAULT_REGION ??
    process.env.AWS_REGION ??
    process.env.AWS_DEFAULT_REGION ??
    'us-east-1';
  return account ? { account, region } : { region };
}

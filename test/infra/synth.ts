// Synthesizes the CDK app the way `npm run synth` does (cdk.json's context), once per test file.
import { App, CfnResource, type Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { Template } from 'aws-cdk-lib/assertions';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addAfluenteStack } from '../../infra/afluente-app.ts';
import type { AfluenteStack } from '../../infra/afluente-stack.ts';
import { readCdkJson } from '../../infra/cdk-json.ts';

export interface Synthesized {
  app: App;
  stack: AfluenteStack;
  template: Template;
  /** The assembly's folder (the app's outdir). */
  outdir: string;
}

export interface SynthOptions {
  /** Context on top of cdk.json's. */
  context?: Record<string, unknown>;
  /**
   * Run the asset bundling (esbuild for the Lambdas, package.py for the Spark jobs). Off, the assets are the
   * unbundled sources, which is enough for asserting on the template and much faster.
   * @default false
   */
  bundle?: boolean;
}

export function synthesize(options: SynthOptions = {}): Synthesized {
  const { context } = readCdkJson();
  const app = new App({
    outdir: mkdtempSync(join(tmpdir(), 'afluente-infra-test-')),
    context: {
      ...context,
      // Fixed, so the template does not depend on the machine's AWS profile.
      'afluente:region': 'eu-west-1',
      // The nag test runs the checks itself, with findings it can print.
      'afluente:nag': false,
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
  const stack = addAfluenteStack(app);
  const assembly = app.synth();
  const template = Template.fromJSON(
    assembly.getStackArtifact(stack.artifactId).template as Record<string, unknown>,
  );
  return { app, stack, template, outdir: assembly.directory };
}

/** Removes a synthesized assembly (the Docker context and the bundles are copied into it). */
export function cleanUp(synthesized: Synthesized | undefined): void {
  if (synthesized) rmSync(synthesized.outdir, { recursive: true, force: true });
}

/** A resource of a synthesized template (its JSON, as the assertions library types it). */
export type Resource = ReturnType<Template['findResources']>[string];

/** The logical id of a construct's resource (an L1, or an L2's default child), for matching Refs and GetAtts. */
export function logicalId(stack: Stack, construct: IConstruct | undefined): string {
  if (!construct) throw new Error('no construct');
  const cfn = CfnResource.isCfnResource(construct) ? construct : construct.node.defaultChild;
  if (!cfn || !CfnResource.isCfnResource(cfn))
    throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return stack.resolve(cfn.logicalId) as string;
}

/** Every resource of one type, by logical id. */
export function resources(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type);
}

/** The data stores and keys `afluente:retainData` governs, by logical id, with their DeletionPolicy. */
export function dataStorePolicies(s: Synthesized): Record<string, string | undefined> {
  const json = s.template.toJSON().Resources as Record<string, { DeletionPolicy?: string }>;
  const { stack } = s;
  const stores = [
    stack.lake.bucket,
    stack.logs.bucket,
    stack.artifacts.bucket,
    stack.state.instance,
    stack.lake.key,
    stack.warehouse.key,
    stack.queue.replicationGroup,
    stack.warehouse.namespace,
  ];
  return Object.fromEntries(
    stores.map((c) => logicalId(stack, c)).map((id) => [id, json[id]?.DeletionPolicy]),
  );
}

// Helpers for acknowledging cdk-nag findings (cdk-nag 3: CDK's own Validations.acknowledge, one id per finding).
// Every acknowledgement names its finding exactly, so a new wildcard or a new rule breach still fails the checks.
import { Stack, Validations } from 'aws-cdk-lib';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

const PACK = 'AwsSolutions';

/** Acknowledges one AwsSolutions rule (e.g. `S1`) on a construct and everything under it. */
export function acknowledge(scope: IConstruct, rule: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `${PACK}-${rule}`, reason });
}

/**
 * Acknowledges IAM5 (wildcard) findings for these resource ARNs (tokens are fine) on a role or policy. The
 * finding id is computed the way the rule computes it, so it matches the synthesized policy exactly.
 */
export function acknowledgeWildcardResources(scope: IConstruct, arns: string[], reason: string): void {
  for (const arn of arns) {
    const flat = flattenCfnReference(Stack.of(scope).resolve(arn));
    Validations.of(scope).acknowledge({ id: `${PACK}-IAM5[Resource::${flat}]`, reason });
  }
}

/** Acknowledges IAM5 findings for wildcard actions (e.g. `s3:GetObject*`) that a CDK construct grants. */
export function acknowledgeWildcardActions(scope: IConstruct, actions: string[], reason: string): void {
  for (const action of actions) {
    Validations.of(scope).acknowledge({ id: `${PACK}-IAM5[Action::${action}]`, reason });
  }
}

/** Acknowledges IAM4 (AWS managed policy) for one managed policy, by its name under `arn:aws:iam::aws:policy/`. */
export function acknowledgeManagedPolicy(scope: IConstruct, policyName: string, reason: string): void {
  Validations.of(scope).acknowledge({
    id: `${PACK}-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/${policyName}]`,
    reason,
  });
}

import type { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { FunctionName } from '../../contract/invocation.ts';
import type { Config } from '../config/env.ts';
import type { Logger } from '../observability/logger.ts';
import { AwsLambdaInvoker } from './aws-invoker.ts';
import type { InvocationEvents } from './events.ts';
import type { LambdaInvoker } from './invoker.ts';
import { LocalLambdaInvoker } from './local-invoker.ts';
import { SqsEventConsumer } from './sqs-consumer.ts';

/** The Lambda invoker config picks: `local` (a child process per invocation) or `aws` (Invoke, async). */
export function lambdaInvoker(
  config: Config,
  events: InvocationEvents,
  logger: Logger,
  client?: LambdaClient,
): LambdaInvoker {
  const { invoker, memoryMb, functions, awsEndpoint } = config.lambda;
  if (invoker === 'local') return new LocalLambdaInvoker(events, logger, { memoryMb });
  return new AwsLambdaInvoker({
    functions: functions as Record<FunctionName, string>,
    ...(client ? { client } : {}),
    ...(awsEndpoint ? { endpoint: awsEndpoint } : {}),
  });
}

/**
 * The consumer of the events queue the functions' destinations deliver to (aws invoker only). Records name a
 * function by its deployed name, which maps back to ours.
 */
export function eventsConsumer(config: Config, events: InvocationEvents, logger: Logger): SqsEventConsumer {
  const { functions, eventsQueueUrl, awsEndpoint } = config.lambda;
  const functionNames: Record<string, FunctionName> = {};
  for (const [fn, deployed] of Object.entries(functions)) {
    // An ARN's sixth field is the name; a plain name is itself.
    functionNames[deployed.split(':')[6] ?? deployed] = fn as FunctionName;
  }
  return new SqsEventConsumer({
    queueUrl: eventsQueueUrl ?? '',
    client: new SQSClient(awsEndpoint ? { endpoint: awsEndpoint } : {}),
    events,
    functionNames,
    logger,
  });
}

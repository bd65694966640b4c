import {
  EMRClient,
  type CancelStepsCommandInput,
  type CancelStepsCommandOutput,
  type DescribeStepCommandOutput,
  type FailureDetails,
  type ListStepsCommandOutput,
  type StepState,
} from '@aws-sdk/client-emr';
import type { Moto } from './moto.ts';

/** A plain EMR client for moto: what a test itself reads or adds goes straight to moto. */
export function emrClientFor(moto: Moto): EMRClient {
  // moto takes any; never real credentials here.
  return new EMRClient({
    endpoint: moto.endpoint,
    region: moto.region,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
}

/** What EMR would report for a step, where moto can't. */
export interface AdvancedStep {
  State: StepState;
  FailureDetails?: FailureDetails;
}

export interface MotoEmr {
  /** For the emr step runner (OrchestrationOptions.emrClient); the runner destroys it on close. */
  client: EMRClient;
  /** Every call sent through the client: the command's name and its input. */
  calls: { command: string; input: unknown }[];
  /** Put a step's state here to "advance" it: DescribeStep and ListSteps then report it. */
  advanced: Map<string, AdvancedStep>;
}

/**
 * An EMR client for moto's EMR (server mode), with a middleware that plays EMR for the two things moto cannot
 * do, and only those (step-runner-emr.test.ts does the same):
 * - moto has no CancelSteps: the middleware answers it (SUBMITTED), moves the step to CANCEL_PENDING, and to
 *   CANCELLED `cancelAfterMs` later, as EMR does;
 * - moto's steps never leave RUNNING/PENDING: a test "advances" a step by putting a state in `advanced`, which
 *   the middleware writes into moto's DescribeStep and ListSteps answers for that step.
 * Everything else (RunJobFlow, AddJobFlowSteps, ListSteps, DescribeStep, ...) is moto's own.
 */
export function motoEmr(moto: Moto, { cancelAfterMs = 300 }: { cancelAfterMs?: number } = {}): MotoEmr {
  const client = emrClientFor(moto);
  const calls: MotoEmr['calls'] = [];
  const advanced = new Map<string, AdvancedStep>();
  const patch = (step: { Id?: string; Status?: object } | undefined): void => {
    const state = step?.Id ? advanced.get(step.Id) : undefined;
    if (step?.Status && state) Object.assign(step.Status, state);
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = context.commandName ?? '';
      calls.push({ command, input: args.input });
      if (command === 'CancelStepsCommand') {
        const ids = (args.input as CancelStepsCommandInput).StepIds ?? [];
        for (const id of ids) {
          advanced.set(id, { State: 'CANCEL_PENDING' });
          setTimeout(() => advanced.set(id, { State: 'CANCELLED' }), cancelAfterMs);
        }
        const output: CancelStepsCommandOutput = {
          $metadata: {},
          CancelStepsInfoList: ids.map((id) => ({ StepId: id, Status: 'SUBMITTED' })),
        };
        return { output, response: {} };
      }
      const result = await next(args);
      if (command === 'DescribeStepCommand') patch((result.output as DescribeStepCommandOutput).Step);
      if (command === 'ListStepsCommand')
        for (const step of (result.output as ListStepsCommandOutput).Steps ?? []) patch(step);
      return result;
    },
    { step: 'initialize', name: 'emrStepStatesMotoLacks' },
  );
  return { client, calls, advanced };
}

import { stepSpecKey, type SparkJob } from '../../contract/steps.ts';
import { stepName, type StepRequest } from '../../service/steps/step-runner.ts';

/** A step request of the demo source, as the transform and load stages build them. */
export function stepRequest(
  job: SparkJob,
  runId: number,
  jobId: number,
  extra: Partial<StepRequest> = {},
): StepRequest {
  return {
    job,
    runId,
    jobId,
    name: stepName(runId, jobId, job),
    specKey: stepSpecKey('demo', '2026-01-31', runId, job),
    inputs: [],
    outputs: [],
    ...extra,
  };
}

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { createHash } from 'node:crypto';
import type { RecordError } from '../../contract/validate.ts';

// One ajv and one compiled validator per schema for the life of the container: compiling is the expensive
// part, and a warm Lambda validates many groups with the same schema.
const ajv = new Ajv({ allErrors: true, strict: false, logger: false });
addFormats.default(ajv);
const compiled = new Map<string, ValidateFunction>();

export function validatorFor(schema: Record<string, unknown>): ValidateFunction {
  const key = createHash('sha256').update(JSON.stringify(schema)).digest('hex');
  let validate = compiled.get(key);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(key, validate);
  }
  return validate;
}

/** ajv's errors as (JSON Pointer, message) pairs, with required and extra fields pointing at the field itself. */
export function recordErrors(errors: readonly ErrorObject[] | null | undefined): RecordError[] {
  return (errors ?? []).map((e) => {
    const params = e.params as Record<string, unknown>;
    if (e.keyword === 'required')
      return { path: `${e.instancePath}/${String(params.missingProperty)}`, message: 'is required' };
    if (e.keyword === 'additionalProperties') {
      return { path: `${e.instancePath}/${String(params.additionalProperty)}`, message: 'is not allowed' };
    }
    if (e.keyword === 'enum') {
      return {
        path: e.instancePath,
        message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    }
    return { path: e.instancePath, message: e.message ?? e.keyword };
  });
}

/** The message an error is counted under: array positions folded, so `/items/3/sku` and `/items/7/sku` add up. */
export function errorKey(error: RecordError): string {
  return `${error.path.replace(/\/\d+(?=\/|$)/g, '/*') || '(record)'} ${error.message}`;
}

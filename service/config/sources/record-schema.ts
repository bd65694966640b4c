// Loads each source's records' JSON Schema and compiles it, so a schema that cannot validate
// records fails at boot rather than on the first run.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { Scope } from './scope.ts';
import { errorMessage, isErrorCode, isRecord } from './unknown-values.ts';

export interface RecordSchema {
  /** Absolute path of the schema file. */
  readonly path: string;
  readonly document: Record<string, unknown>;
}

export async function loadRecordSchema(
  file: string,
  folder: string,
  scope: Scope,
): Promise<RecordSchema | undefined> {
  const schemaPath = path.resolve(folder, file);
  let text: string;
  try {
    text = await readFile(schemaPath, 'utf8');
  } catch (error) {
    const reason = isErrorCode(error, 'ENOENT') ? 'not found' : `unreadable (${errorMessage(error)})`;
    scope.problem(['schema'], `file ${reason}: ${schemaPath}`);
    return;
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    scope.problem(['schema'], `file ${schemaPath} is not valid JSON: ${errorMessage(error)}`);
    return;
  }
  if (!isRecord(document)) {
    scope.problem(['schema'], `file ${schemaPath} must hold a JSON Schema object`);
    return;
  }
  try {
    recordAjv().compile(document);
  } catch (error) {
    scope.problem(['schema'], `file ${schemaPath} is not a valid JSON Schema: ${errorMessage(error)}`);
    return;
  }
  return { path: schemaPath, document };
}

// A fresh instance per schema, because two sources' schemas may share an $id.
function recordAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, logger: false });
  ajvFormats.default(ajv);
  return ajv;
}

import { randomUUID } from 'node:crypto';

/**
 * The record AWS Lambda's on-success destination sends for an async invocation that returned `result`: what the
 * tests that stand in for the Lambda service (no emulator here runs a function without Docker) put on SQS.
 */
export function successRecord(functionName: string, request: unknown, result: unknown): string {
  return JSON.stringify({
    version: '1.0',
    timestamp: new Date().toISOString(),
    requestContext: {
      requestId: randomUUID(),
      functionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}:$LATEST`,
      condition: 'Success',
      approximateInvokeCount: 1,
    },
    requestPayload: request,
    responseContext: { statusCode: 200, executedVersion: '$LATEST' },
    responsePayload: result,
  });
}

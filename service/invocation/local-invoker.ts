import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { StageFailure } from '../../contract/ingest.ts';
import type { FunctionName, Functions, InvocationEvent } from '../../contract/invocation.ts';
import type { Logger } from '../observability/logger.ts';
import type { InvocationEvents } from './events.ts';
import type { LambdaInvoker } from './invoker.ts';

const RUNNER = fileURLToPath(new URL('../../lambdas/local-runner.ts', import.meta.url));
const STDERR_TAIL = 2000;

/**
 * V8 flags for a handler process, from the memory a Lambda function would have. Capping the old generation at
 * half of it, and keeping the young generation small, holds RSS near the live set (a page and a part's
 * compression window) instead of letting garbage pile up until V8's defaults for a 24 GiB machine kick in.
 * The CDK app gives the real functions the same NODE_OPTIONS.
 */
export function handlerNodeFlags(memoryMb: number): string[] {
  return ['--max-semi-space-size=8', `--max-old-space-size=${Math.floor(memoryMb / 2)}`];
}

type RunnerMessage = { ok: true; result: unknown } | { ok: false; error: { name: string; message: string } };

/**
 * Runs each invocation in a child process with the same handler and payload as on AWS. A crash of the handler
 * (an exception, running out of memory, a kill) becomes a `failure` event; it never takes down the service.
 */
export class LocalLambdaInvoker implements LambdaInvoker {
  private readonly events: InvocationEvents;
  private readonly logger: Logger;
  private readonly running = new Map<string, ChildProcess>();
  private readonly flags: string[];

  constructor(events: InvocationEvents, logger: Logger, options: { memoryMb: number }) {
    this.events = events;
    this.logger = logger;
    this.flags = handlerNodeFlags(options.memoryMb);
  }

  async invoke<F extends FunctionName>(
    fn: F,
    invocationId: string,
    request: Functions[F]['request'],
  ): Promise<void> {
    const child = fork(RUNNER, [], {
      execArgv: this.flags,
      // Its own process group: a SIGTERM meant for the service (a terminal's Ctrl-C, a runtime signalling the
      // group) must not end the invocation the service is draining. It still ends with the service: the IPC
      // channel closes when the service dies (lambdas/local-runner.ts), and close() kills what is left.
      detached: true,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    this.running.set(invocationId, child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL);
    });
    let message: RunnerMessage | undefined;
    child.once('message', (m: RunnerMessage) => (message = m));
    child.once('exit', (code, signal) => {
      this.running.delete(invocationId);
      const event = toEvent(fn, invocationId, message, code, signal, stderr);
      this.events.deliver(event).catch((error: unknown) => {
        this.logger.error({ err: error, invocationId }, 'could not deliver a local invocation result');
      });
    });
    child.send({ function: fn, request });
  }

  cancel(invocationId: string): void {
    this.running.get(invocationId)?.kill('SIGKILL');
  }

  async close(): Promise<void> {
    for (const child of this.running.values()) child.kill('SIGKILL');
  }
}

function toEvent(
  fn: FunctionName,
  invocationId: string,
  message: RunnerMessage | undefined,
  code: number | null,
  signal: NodeJS.Signals | null,
  stderr: string,
): InvocationEvent {
  if (message?.ok) {
    return { invocationId, function: fn, outcome: 'success', result: message.result } as InvocationEvent;
  }
  const error: StageFailure = message
    ? {
        reason: 'handler_error',
        message: `${fn} handler threw ${message.error.name}: ${message.error.message}`,
        retryable: true,
      }
    : {
        reason: 'crash',
        message:
          `${fn} handler crashed (${signal ? `signal ${signal}` : `exit code ${code}`})` +
          (stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''),
        retryable: true,
      };
  return { invocationId, function: fn, outcome: 'failure', error };
}

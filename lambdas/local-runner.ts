// Runs a Lambda handler in a child process of the service, as the local Lambda invoker's stand-in for AWS. It
// takes one request over IPC, sends back one message, and exits. If the service dies, the IPC channel closes
// and the runner exits too, so no orphan keeps writing to the lake.
import type { FunctionName } from '../contract/invocation.ts';

interface RunMessage {
  function: FunctionName;
  request: unknown;
}

const HANDLERS: Record<FunctionName, () => Promise<(request: never) => Promise<unknown>>> = {
  ingest: async () => (await import('./ingest/handler.ts')).handler,
  validate: async () => (await import('./validate/handler.ts')).handler,
};

process.on('disconnect', () => process.exit(1));
process.once('message', (message: RunMessage) => {
  void (async () => {
    try {
      const handler = await HANDLERS[message.function]();
      const result = await handler(message.request as never);
      process.send?.({ ok: true, result }, () => process.exit(0));
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      process.send?.({ ok: false, error: { name: e.name, message: e.message, stack: e.stack } }, () =>
        process.exit(0),
      );
    }
  })();
});

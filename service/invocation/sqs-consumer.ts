import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FunctionName } from '../../contract/invocation.ts';
import type { Logger } from '../observability/logger.ts';
import { parseDestinationRecord, PoisonMessageError, type ParsedRecord } from './destination-record.ts';
import type { InvocationEvents } from './events.ts';

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
// Enough of a poison body to recognise it in the log; the whole of it stays in the DLQ.
const BODY_EXCERPT = 500;

export interface SqsEventConsumerOptions {
  /** The events queue that the functions' on-success and on-failure destinations send to. */
  queueUrl: string;
  client: SQSClient;
  events: InvocationEvents;
  /** Our function for each deployed Lambda function name (the name part of the ARN in a record). */
  functionNames: Record<string, FunctionName>;
  logger: Logger;
  /**
   * How long one ReceiveMessage waits for a message (long polling).
   * @default 20
   */
  waitTimeSeconds?: number;
  /**
   * Messages per ReceiveMessage (at most 10).
   * @default 10
   */
  maxMessages?: number;
  /**
   * How long a received message stays hidden from other consumers; one not deleted by then is received again.
   * @default 60
   */
  visibilityTimeoutSeconds?: number;
  /**
   * How long a poison message is hidden before its next receive. Its receives, counted by the queue's redrive
   * policy, move it to the DLQ; this keeps the consumer from spinning on it meanwhile.
   * @default 300
   */
  poisonBackoffSeconds?: number;
}

export interface PollResult {
  received: number;
  delivered: number;
  duplicates: number;
  poison: number;
}

type Outcome = 'delivered' | 'duplicate' | 'poison';

/**
 * Consumes the events queue: each Lambda destination record becomes an InvocationEvent for its waiter.
 * A message is deleted only after its event is in Redis, so a crash in between makes SQS redeliver it, and the
 * event's dedupe marker turns the redelivery into a no-op: every result is delivered exactly once.
 */
export class SqsEventConsumer {
  private readonly options: Required<SqsEventConsumerOptions>;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: SqsEventConsumerOptions) {
    this.options = {
      ...options,
      waitTimeSeconds: options.waitTimeSeconds ?? 20,
      maxMessages: options.maxMessages ?? 10,
      visibilityTimeoutSeconds: options.visibilityTimeoutSeconds ?? 60,
      poisonBackoffSeconds: options.poisonBackoffSeconds ?? 300,
    };
  }

  /** Polls until `stop`; errors from SQS or Redis are logged and retried with a backoff. */
  start(): void {
    if (this.loop) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.run(controller.signal);
  }

  /** Ends the long poll at once, and resolves when the batch in flight is handled. */
  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
    this.loop = undefined;
    this.controller = undefined;
  }

  /** One ReceiveMessage and its messages. Rejects, after handling the rest, if SQS or Redis failed. */
  async pollOnce(): Promise<PollResult> {
    const { client, queueUrl } = this.options;
    const { Messages: messages = [] } = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: this.options.maxMessages,
        WaitTimeSeconds: this.options.waitTimeSeconds,
        VisibilityTimeout: this.options.visibilityTimeoutSeconds,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
      { abortSignal: this.controller?.signal },
    );
    const result: PollResult = { received: messages.length, delivered: 0, duplicates: 0, poison: 0 };
    const errors: unknown[] = [];
    await Promise.all(
      messages.map(async (message) => {
        try {
          const outcome = await this.handle(message);
          if (outcome === 'delivered') result.delivered++;
          else if (outcome === 'duplicate') result.duplicates++;
          else result.poison++;
        } catch (error) {
          errors.push(error);
        }
      }),
    );
    if (errors.length > 0) {
      throw new Error(
        `${errors.length} of ${messages.length} event messages could not be handled and will be received again: ` +
          errorMessage(errors[0]),
        { cause: errors.length === 1 ? errors[0] : new AggregateError(errors) },
      );
    }
    return result;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        await this.pollOnce();
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        const delayMs = Math.min(BACKOFF_FIRST_MS * 2 ** failures, BACKOFF_MAX_MS);
        failures++;
        this.options.logger.error(
          { err: error, queueUrl: this.options.queueUrl, retryInMs: delayMs },
          'events queue: polling failed',
        );
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  private async handle(message: Message): Promise<Outcome> {
    const { client, queueUrl, events, functionNames } = this.options;
    let parsed: ParsedRecord;
    try {
      parsed = parseDestinationRecord(message.Body ?? '', functionNames);
    } catch (error) {
      if (!(error instanceof PoisonMessageError)) throw error;
      await this.setAside(message, error);
      return 'poison';
    }
    const delivered = await events.deliverOnce(parsed.eventId, parsed.event);
    // Only now: until the event is in Redis, the message is the result's only copy.
    await client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
    this.options.logger.debug(
      {
        messageId: message.MessageId,
        eventId: parsed.eventId,
        invocationId: parsed.event.invocationId,
        delivered,
      },
      delivered ? 'events queue: delivered an invocation result' : 'events queue: dropped a duplicate result',
    );
    return delivered ? 'delivered' : 'duplicate';
  }

  /**
   * Leaves a poison message in the queue, hidden for the poison backoff, so that the redrive policy moves it to
   * the DLQ after maxReceiveCount receives: it is kept for a person to look at, and never spun on.
   */
  private async setAside(message: Message, error: PoisonMessageError): Promise<void> {
    const { client, queueUrl, poisonBackoffSeconds } = this.options;
    this.options.logger.error(
      {
        messageId: message.MessageId,
        receiveCount: receiveCount(message),
        body: message.Body?.slice(0, BODY_EXCERPT),
        hiddenForSeconds: poisonBackoffSeconds,
      },
      `events queue: poison message, left for the DLQ: ${error.message}`,
    );
    await client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: queueUrl,
        ReceiptHandle: message.ReceiptHandle,
        VisibilityTimeout: poisonBackoffSeconds,
      }),
    );
  }
}

function receiveCount(message: Message): number | undefined {
  const count = message.Attributes?.ApproximateReceiveCount;
  return count === undefined ? undefined : Number(count);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

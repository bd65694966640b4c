import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRIC, METRIC_DIMENSIONS, METRICS_NAMESPACE, type MetricName } from '../../contract/metrics.ts';
import { STAGES } from '../../contract/stages.ts';

export interface MonitoringProps {
  /** The ingest function (errors and throttles on the dashboard). Required. */
  readonly ingest: lambda.IFunction;
  /** The validate function (errors and throttles on the dashboard). Required. */
  readonly validate: lambda.IFunction;
  /** The Lambda results queue (its depth on the dashboard). Required. */
  readonly eventsQueue: sqs.IQueue;
  /** The events DLQ: any message in it raises an alarm. Required. */
  readonly deadLetterQueue: sqs.IQueue;
  /** The api service's target group (healthy and unhealthy hosts). */
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** The api service (CPU on the dashboard). Required. */
  readonly api: ecs.FargateService;
  /** The worker service (CPU on the dashboard). Required. */
  readonly worker: ecs.FargateService;
  /**
   * An address subscribed to the alarm topic (it must confirm the subscription).
   * @default - no subscription
   */
  readonly alarmEmail?: string;
  /**
   * How old an unfinished run may get before the deadline alarm fires.
   * @default Duration.hours(6)
   */
  readonly runDeadline?: Duration;
  /**
   * What happens to the topic's key when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly keyRemovalPolicy?: RemovalPolicy;
}

const PERIOD = Duration.minutes(5);

/**
 * The dashboard and the alarms. The service's metrics (contract/metrics.ts) are read through their aggregate,
 * dimensionless series for totals and alarms, and through the `Stage` dimension for per-stage durations.
 */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly runsFailedAlarm: cloudwatch.Alarm;
  readonly runDeadlineAlarm: cloudwatch.Alarm;
  readonly deadLetterAlarm: cloudwatch.Alarm;
  readonly serviceUnhealthyAlarm: cloudwatch.CompositeAlarm;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const key = new kms.Key(this, 'TopicKey', {
      description: 'afluente alarm topic',
      enableKeyRotation: true,
      removalPolicy: props.keyRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    // CloudWatch publishes alarms to the encrypted topic with this key; without the grant they vanish.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'Alarms', {
      masterKey: key,
      enforceSSL: true,
      displayName: 'afluente alarms',
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const notify = new actions.SnsAction(this.topic);

    this.runsFailedAlarm = new cloudwatch.Alarm(this, 'RunsFailed', {
      alarmDescription: 'A pipeline run ended FAILED (see the run and its events in the API).',
      metric: total(METRIC.runsFailed, 'Sum'),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const deadline = props.runDeadline ?? Duration.hours(6);
    this.runDeadlineAlarm = new cloudwatch.Alarm(this, 'RunDeadline', {
      alarmDescription: `A run has been unfinished for more than ${deadline.toHumanString()}.`,
      metric: total(METRIC.oldestActiveRunAge, 'Maximum'),
      threshold: deadline.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetters', {
      alarmDescription: 'Lambda result records the service could not parse are in the events DLQ.',
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: PERIOD,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const tg = props.targetGroup.metrics;
    const noHealthyApi = new cloudwatch.Alarm(this, 'ApiNoHealthyHosts', {
      alarmDescription: 'No api task passes the ALB health check.',
      metric: tg.healthyHostCount({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MINIMUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      // No data means no targets reporting at all: as bad as none healthy.
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    const unhealthyApi = new cloudwatch.Alarm(this, 'ApiUnhealthyHosts', {
      alarmDescription: 'An api task fails the ALB health check.',
      metric: tg.unhealthyHostCount({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.serviceUnhealthyAlarm = new cloudwatch.CompositeAlarm(this, 'ServiceUnhealthy', {
      alarmDescription: 'The afluente API is unhealthy behind its load balancer.',
      alarmRule: cloudwatch.AlarmRule.anyOf(noHealthyApi, unhealthyApi),
    });
    for (const alarm of [
      this.runsFailedAlarm,
      this.runDeadlineAlarm,
      this.deadLetterAlarm,
      this.serviceUnhealthyAlarm,
    ]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.days(1),
    });
    const graph = (title: string, left: cloudwatch.IMetric[], right: cloudwatch.IMetric[] = []) =>
      new cloudwatch.GraphWidget({ title, left, right, width: 8, height: 6 });
    this.dashboard.addWidgets(
      graph('Runs by status', [
        total(METRIC.runsCreated, 'Sum', 'created'),
        total(METRIC.runsCompleted, 'Sum', 'completed'),
        total(METRIC.runsFailed, 'Sum', 'failed'),
        total(METRIC.runsCancelled, 'Sum', 'cancelled'),
      ]),
      graph(
        'Active runs',
        [total(METRIC.runsActive, 'Maximum', 'active')],
        [total(METRIC.oldestActiveRunAge, 'Maximum', 'oldest age (s)')],
      ),
      graph(
        'Stage duration (s, p90)',
        STAGES.map((stage) => byStage(METRIC.stageDuration, stage, 'p90')),
      ),
    );
    this.dashboard.addWidgets(
      graph('Records', [
        total(METRIC.recordsIngested, 'Sum', 'ingested'),
        total(METRIC.recordsValid, 'Sum', 'valid'),
        total(METRIC.rowsLoaded, 'Sum', 'loaded'),
      ]),
      graph('Rejected records', [total(METRIC.recordsRejected, 'Sum', 'rejected')]),
      graph(
        'Queue depth',
        [total(METRIC.queueWaiting, 'Maximum', 'stage jobs waiting')],
        [
          props.eventsQueue.metricApproximateNumberOfMessagesVisible({
            period: PERIOD,
            statistic: cloudwatch.Stats.MAXIMUM,
            label: 'result events',
          }),
        ],
      ),
    );
    this.dashboard.addWidgets(
      graph('Lambda errors', [
        props.ingest.metricErrors({ period: PERIOD, label: 'ingest errors' }),
        props.validate.metricErrors({ period: PERIOD, label: 'validate errors' }),
        props.ingest.metricThrottles({ period: PERIOD, label: 'ingest throttles' }),
        props.validate.metricThrottles({ period: PERIOD, label: 'validate throttles' }),
        total(METRIC.pageRetries, 'Sum', 'ingest page retries (429, 5xx, timeouts)'),
      ]),
      graph('EMR step failures', [
        total(METRIC.stepsFailed, 'Sum', 'all steps'),
        ...(['transform', 'load'] as const).map((stage) => byStage(METRIC.stepsFailed, stage, 'Sum')),
      ]),
      graph('Events DLQ depth', [
        props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: PERIOD,
          statistic: cloudwatch.Stats.MAXIMUM,
          label: 'dead letters',
        }),
      ]),
    );
    this.dashboard.addWidgets(
      graph(
        'Service',
        [
          tg.healthyHostCount({ period: Duration.minutes(1), label: 'api healthy' }),
          tg.unhealthyHostCount({ period: Duration.minutes(1), label: 'api unhealthy' }),
        ],
        [
          props.api.metricCpuUtilization({ label: 'api CPU %' }),
          props.worker.metricCpuUtilization({ label: 'worker CPU %' }),
        ],
      ),
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: [
          this.runsFailedAlarm,
          this.runDeadlineAlarm,
          this.deadLetterAlarm,
          this.serviceUnhealthyAlarm,
        ],
        width: 8,
        height: 6,
      }),
    );
  }
}

/** A metric's aggregate series: emitted with no dimensions, over every source, stage or queue. */
function total(name: MetricName, statistic: string, label?: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    statistic,
    period: PERIOD,
    ...(label ? { label } : {}),
  });
}

/** A metric's series for one stage (its drill-down dimension must be `Stage`). */
function byStage(name: MetricName, stage: string, statistic: string): cloudwatch.Metric {
  const dimension = METRIC_DIMENSIONS[name];
  if (dimension !== 'Stage') throw new Error(`${name} has no Stage dimension (it has ${dimension})`);
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: { Stage: stage },
    statistic,
    period: PERIOD,
    label: stage,
  });
}

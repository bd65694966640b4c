import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  /**
   * NAT gateways for the private subnets. The ECS tasks and EMR clusters reach AWS APIs through the endpoints
   * below; the NAT is for everything else (public package mirrors on EMR, APIs without an endpoint).
   * @default 1
   */
  readonly natGateways?: number;
  /**
   * Whether to create interface endpoints for the AWS APIs the tasks, clusters and rotation Lambda call.
   * Each costs an hourly fee per zone; without them the same calls go through the NAT gateway.
   * @default true
   */
  readonly interfaceEndpoints?: boolean;
  /**
   * The VPC's address range.
   * @default '10.40.0.0/16'
   */
  readonly cidr?: string;
  /**
   * How long VPC flow logs are kept.
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly flowLogRetention?: logs.RetentionDays;
  /**
   * What happens to the flow log group when it leaves the stack (it is audit data).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The VPC: public subnets (NAT only; the ALB is internal), private subnets with egress for the ECS tasks, EMR
 * clusters and endpoints, and isolated subnets for the data stores (RDS, ElastiCache, Redshift). Three zones,
 * because Redshift Serverless requires subnets in three.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  /** Where the ECS tasks, the EMR clusters and the rotation Lambda run. */
  readonly appSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
  /** Where the data stores live: no route to the internet at all. */
  readonly dataSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

  /** The VPC's range as a literal (the VPC's own CidrBlock is a token a security check cannot read). */
  readonly cidr: string;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    this.cidr = props.cidr ?? '10.40.0.0/16';
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(this.cidr),
      maxAzs: 3,
      natGateways: props.natGateways ?? 1,
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        // /20: room for Fargate tasks, EMR instances and endpoint interfaces as they scale out.
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // Every subnet routes S3 through the gateway: the lake, ECR image layers, and Redshift's enhanced VPC
      // routing (its COPY reads the lake from the isolated subnets).
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? logs.RetentionDays.ONE_YEAR,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });

    if (props.interfaceEndpoints ?? true) {
      const services: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
        // The service: results from the events queue, Lambda invokes, EMR steps.
        Sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
        Lambda: ec2.InterfaceVpcEndpointAwsService.LAMBDA,
        Emr: ec2.InterfaceVpcEndpointAwsService.EMR,
        // ECS: secrets at task start, image pulls, awslogs (which also carries the EMF metrics).
        SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
        EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
        Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        Monitoring: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
        // EMR instances: credentials, SSE-KMS and disk keys, and the load's IAM login to the warehouse.
        Sts: ec2.InterfaceVpcEndpointAwsService.STS,
        Kms: ec2.InterfaceVpcEndpointAwsService.KMS,
        RedshiftServerless: ec2.InterfaceVpcEndpointAwsService.REDSHIFT_SERVERLESS,
      };
      for (const [name, service] of Object.entries(services)) {
        const endpoint = this.vpc.addInterfaceEndpoint(name, {
          service,
          subnets: this.appSubnets,
          open: false,
        });
        // HTTPS from the VPC's own range, which is all that calls them (the isolated subnets included).
        endpoint.connections.allowFrom(
          ec2.Peer.ipv4(this.cidr),
          ec2.Port.HTTPS,
          'AWS API calls from the VPC',
        );
      }
    }
  }
}

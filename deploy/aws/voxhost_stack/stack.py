"""The voxhost stack: network, encryption, models on EFS, GPU capacity, the ECS service.

Edge (ALB, WAF) lives in edge.py, autoscaling and monitoring in monitoring.py,
cdk-nag suppressions (each with its reason) in nag.py.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import AspectPriority, Aspects, CfnOutput, CfnParameter, Duration, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from voxhost_stack import checkov, edge, monitoring, nag
from voxhost_stack.config import StackConfig

EFS_MOUNT = "/mnt/efs"
APP_UID = 10001  # the Dockerfile's non-root user; EFS access point writes as it
# Placeholder API key ("name:sha256hex"): no key hashes to zeros, so the server
# is closed until an operator stores real hashes in the secret.
API_KEYS_PLACEHOLDER = "unset:" + "0" * 64


class VoxhostStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig | None = None, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        self.config = cfg = config or StackConfig()

        # One customer-managed key (rotated yearly) for EFS, logs, secrets and SNS.
        # The alias follows the stack name, so two stacks (staging, prod) in one account don't clash.
        self.key = kms.Key(self, "DataKey", enable_key_rotation=True, alias=f"alias/{self.stack_name}",
                           description="voxhost data at rest: EFS, CloudWatch Logs, Secrets Manager, SNS",
                           removal_policy=RemovalPolicy.RETAIN)
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],  # a key policy's "*" is this key
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                    f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"}},
        ))

        self.vpc = self._network(cfg)
        self.file_system, self.access_point = self._models_storage(cfg)
        self.cluster, self.capacity_provider, self.asg = self._capacity(cfg)
        self.log_group = logs.LogGroup(
            self, "ServiceLogs", retention=self._retention(cfg.log_retention_days),
            encryption_key=self.key, removal_policy=RemovalPolicy.RETAIN)
        self.api_keys = secretsmanager.Secret(
            self, "ApiKeys", encryption_key=self.key,
            description="voxhost API keys as name:sha256hex,... in field api_keys (VOXHOST_API_KEYS)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"api_keys": API_KEYS_PLACEHOLDER}),
                generate_string_key="generated"))
        self.task_definition, self.container = self._task(cfg)
        self.service = self._service(cfg)
        self._clean_teardown()
        self.alb, self.target_group, self.web_acl = edge.add_edge(self, cfg)
        self._drain_on_deregistration(cfg)
        monitoring.add_monitoring(self, cfg)
        self._outputs()
        nag.suppress(self)
        checkov.skip(self)

    # --- network ---
    def _network(self, cfg: StackConfig) -> ec2.Vpc:
        nat = cfg.egress == "nat"
        vpc = ec2.Vpc(
            self, "Vpc", max_azs=cfg.max_azs, nat_gateways=1 if nat else 0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="tasks", cidr_mask=20,
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if nat else ec2.SubnetType.PRIVATE_ISOLATED),
            ],
        )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=logs.RetentionDays.ONE_MONTH,
                                  encryption_key=self.key, removal_policy=RemovalPolicy.DESTROY)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                         traffic_type=ec2.FlowLogTrafficType.REJECT)
        self.interface_endpoints: list[ec2.InterfaceVpcEndpoint] = []
        # Image layers come from S3: through the (free) gateway endpoint rather than
        # the NAT gateway, which bills every GB.
        vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        if not nat:
            # No internet: everything the instances and tasks call has an endpoint.
            # Models must be baked into the image or pre-seeded on EFS (docs/deploy.md).
            for name, service in [
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
                ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
                ("Ecs", ec2.InterfaceVpcEndpointAwsService.ECS),
                ("EcsAgent", ec2.InterfaceVpcEndpointAwsService.ECS_AGENT),
                ("EcsTelemetry", ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY),
                ("CloudWatch", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING),
                # The server's own DescribeTargetHealth (drain on deregistration).
                ("ElasticLoadBalancing", ec2.InterfaceVpcEndpointAwsService.ELASTIC_LOAD_BALANCING),
                *([("SsmMessages", ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES)] if cfg.ecs_exec else []),
            ]:
                self.interface_endpoints.append(
                    vpc.add_interface_endpoint(name, service=service, private_dns_enabled=True))
        return vpc

    # --- models and voices on EFS ---
    def _models_storage(self, cfg: StackConfig) -> tuple[efs.FileSystem, efs.AccessPoint]:
        self.efs_sg = ec2.SecurityGroup(self, "EfsSg", vpc=self.vpc, allow_all_outbound=False,
                                        description="EFS mount targets: NFS from voxhost tasks only")
        fs = efs.FileSystem(
            self, "Models", vpc=self.vpc, encrypted=True, kms_key=self.key, security_group=self.efs_sg,
            vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"),
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            enable_automatic_backups=True, removal_policy=RemovalPolicy.RETAIN,
            allow_anonymous_access=False,
        )
        # Refuse any unencrypted NFS connection, whoever holds the mount.
        fs.add_to_resource_policy(iam.PolicyStatement(
            effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()], actions=["*"], resources=["*"],
            conditions={"Bool": {"aws:SecureTransport": "false"}}))
        ap = fs.add_access_point(
            "VoxhostAccessPoint", path="/voxhost",
            create_acl=efs.Acl(owner_uid=str(APP_UID), owner_gid=str(APP_UID), permissions="750"),
            posix_user=efs.PosixUser(uid=str(APP_UID), gid=str(APP_UID)))
        return fs, ap

    # --- GPU capacity: a mixed spot / on-demand Auto Scaling group ---
    def _capacity(self, cfg: StackConfig):
        cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc,
                              container_insights_v2=ecs.ContainerInsights.ENABLED)
        image = (ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.GPU) if cfg.ami == "al2"
                 else ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.GPU))
        self.instance_sg = ec2.SecurityGroup(self, "InstanceSg", vpc=self.vpc,
                                             description="GPU container instances (tasks use their own ENIs)")
        role = iam.Role(self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                        description="ECS container instance: agent registration, image pulls, GPU metrics")
        # GPU utilisation: the CloudWatch agent on the instance, into our namespace only.
        role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": f"{cfg.metric_namespace}/gpu"}}))
        # The agent resolves ${aws:AutoScalingGroupName} from the instance's tags;
        # without this the GPU metric has no group dimension and the widget stays empty.
        role.add_to_policy(iam.PolicyStatement(actions=["ec2:DescribeTags"], resources=["*"]))
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            # Spot: the agent drains tasks (ALB deregistration, SIGTERM) on the 2-minute notice.
            "echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true >> /etc/ecs/ecs.config",
            # Tasks get no instance-role credentials from IMDS: only their own task role.
            "echo ECS_AWSVPC_BLOCK_IMDS=true >> /etc/ecs/ecs.config",
            *gpu_agent_commands(cfg.metric_namespace))
        template = ec2.LaunchTemplate(
            self, "GpuTemplate", machine_image=image, role=role, security_group=self.instance_sg,
            user_data=user_data, require_imdsv2=True, http_put_response_hop_limit=2,
            block_devices=[ec2.BlockDevice(device_name="/dev/xvda", volume=ec2.BlockDeviceVolume.ebs(
                cfg.instance_volume_gb, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3))],
        )
        asg = autoscaling.AutoScalingGroup(
            self, "GpuAsg", vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"),
            # Empty at creation: ECS managed scaling adds instances as tasks need them,
            # so the stack never waits on GPU instances it has no tasks for.
            min_capacity=0, max_capacity=cfg.max_instances, capacity_rebalance=True,
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=template,
                launch_template_overrides=[autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(t))
                                           for t in cfg.instance_types],
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_base_capacity=cfg.on_demand_base,
                    on_demand_percentage_above_base_capacity=cfg.on_demand_percent_above_base,
                    spot_allocation_strategy=autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
                ),
            ),
        )
        provider = ecs.AsgCapacityProvider(
            self, "GpuCapacity", auto_scaling_group=asg, enable_managed_scaling=True,
            target_capacity_percent=100, enable_managed_termination_protection=True,
            enable_managed_draining=True,
            machine_image_type=ecs.MachineImageType.AMAZON_LINUX_2,
            spot_instance_draining=True,
        )
        cluster.add_asg_capacity_provider(provider, spot_instance_draining=True)
        self.instance_role = role
        return cluster, provider, asg

    # --- the task: one GPU, the design's 4 vCPU / 15 GiB, models on EFS ---
    def _task(self, cfg: StackConfig):
        task_role = iam.Role(self, "TaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                             description="voxhost server: mounts its EFS access point, reads its own target's health")
        td = ecs.Ec2TaskDefinition(self, "Task", network_mode=ecs.NetworkMode.AWS_VPC, task_role=task_role)
        td.add_volume(name="models", efs_volume_configuration=ecs.EfsVolumeConfiguration(
            file_system_id=self.file_system.file_system_id,
            transit_encryption="ENABLED",
            authorization_config=ecs.AuthorizationConfig(access_point_id=self.access_point.access_point_id,
                                                         iam="ENABLED")))
        self.file_system.grant(task_role, "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")
        repo = ecr.Repository.from_repository_name(self, "Repo", cfg.image_repository)
        env = {
            "VOXHOST_HOST": "0.0.0.0",
            "VOXHOST_PORT": str(cfg.container_port),
            "VOXHOST_STT_MODELS": cfg.stt_models,
            "VOXHOST_STT_DEVICE": "cuda",
            "VOXHOST_DRAIN_TIMEOUT_S": str(cfg.drain_seconds),
            "VOXHOST_KEEPALIVE_TIMEOUT_S": str(cfg.keepalive_seconds),  # above the ALB idle timeout: no 502s
            "VOXHOST_EMF_ENABLED": "true",
            "VOXHOST_EMF_NAMESPACE": cfg.metric_namespace,
            "VOXHOST_EMF_SERVICE_NAME": cfg.service_name,
            # The group mixes types; the server prices the one it runs on from its GPU's name.
            "VOXHOST_INSTANCE_TYPE": "auto",
            **({"VOXHOST_STT_DOWNLOAD_ROOT": cfg.stt_download_root} if cfg.stt_download_root else {}),
            **cfg.extra_env,
        }
        container = td.add_container(
            "voxhost",
            image=ecs.ContainerImage.from_ecr_repository(repo, self._image_tag(cfg)),
            cpu=cfg.task_cpu, memory_limit_mib=cfg.task_memory_mib, gpu_count=1,
            environment=env,
            secrets={"VOXHOST_API_KEYS": ecs.Secret.from_secrets_manager(self.api_keys, field="api_keys")},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="voxhost", log_group=self.log_group,
                                            mode=ecs.AwsLogDriverMode.NON_BLOCKING),
            port_mappings=[ecs.PortMapping(container_port=cfg.container_port)],
            stop_timeout=Duration.seconds(cfg.stop_timeout_seconds),
            # Liveness only (/health): a slow model load must not get the task killed;
            # readiness (/ready) is the ALB's job.
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c",
                         f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{cfg.container_port}"
                         "/health', timeout=4)"],
                interval=Duration.seconds(30), timeout=Duration.seconds(5), retries=3,
                start_period=Duration.seconds(60)),
            readonly_root_filesystem=False,
        )
        container.add_mount_points(ecs.MountPoint(container_path=EFS_MOUNT, source_volume="models",
                                                  read_only=False))
        if cfg.models_bucket:
            self._models_sync(cfg, td, task_role, container)
        return td, container

    def _drain_on_deregistration(self, cfg: StackConfig) -> None:
        """ECS sends SIGTERM only after the deregistration delay, when the ALB has
        already closed live sessions: the server watches its own target instead and
        drains on `draining` (ops/target_drain.py). DescribeTargetHealth has no
        resource-level permissions, so its Resource is "*"; it is read-only."""
        self.container.add_environment("VOXHOST_DRAIN_TARGET_GROUP_ARN", self.target_group.target_group_arn)
        self.container.add_environment("VOXHOST_DRAIN_POLL_INTERVAL_S", str(cfg.drain_poll_seconds))
        self.task_definition.task_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["elasticloadbalancing:DescribeTargetHealth"], resources=["*"]))

    def _models_sync(self, cfg: StackConfig, td: ecs.Ec2TaskDefinition, task_role: iam.Role,
                     server: ecs.ContainerDefinition) -> None:
        """Init container: s3://<bucket>/models/ -> EFS, then the server starts (offline)."""
        bucket = s3.Bucket.from_bucket_name(self, "ModelsBucket", cfg.models_bucket)
        # Read the models/ prefix and nothing else (the sync lists it, then gets each object).
        task_role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"],
                                                    resources=[bucket.arn_for_objects("models/*")]))
        task_role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                                    conditions={"StringLike": {"s3:prefix": ["models/*"]}}))
        repo = ecr.Repository.from_repository_name(self, "ModelsSyncRepo", cfg.models_sync_repository)
        sync = td.add_container(
            "models-sync", essential=False,
            image=ecs.ContainerImage.from_ecr_repository(repo, cfg.models_sync_tag),
            command=["s3", "sync", f"s3://{cfg.models_bucket}/models/", cfg.stt_download_root or
                     f"{EFS_MOUNT}/models", "--only-show-errors", "--no-progress"],
            # No CPU reservation and a small memory one: it runs before the server takes the instance.
            cpu=0, memory_reservation_mib=256, user=f"{APP_UID}:{APP_UID}",
            logging=ecs.LogDrivers.aws_logs(stream_prefix="models-sync", log_group=self.log_group,
                                            mode=ecs.AwsLogDriverMode.NON_BLOCKING))
        sync.add_mount_points(ecs.MountPoint(container_path=EFS_MOUNT, source_volume="models", read_only=False))
        server.add_container_dependencies(ecs.ContainerDependency(
            container=sync, condition=ecs.ContainerDependencyCondition.SUCCESS))
        server.add_environment("HF_HUB_OFFLINE", "1")  # a missing model fails at once, not on a hub timeout

    def _image_tag(self, cfg: StackConfig) -> str:
        return cfg.image_tag or CfnParameter(
            self, "ImageTag", type="String", allowed_pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            description="Image tag in the ECR repository (immutable tags; never 'latest')").value_as_string

    def _service(self, cfg: StackConfig) -> ecs.Ec2Service:
        self.task_sg = ec2.SecurityGroup(self, "TaskSg", vpc=self.vpc, description="voxhost tasks")
        self.efs_sg.add_ingress_rule(self.task_sg, ec2.Port.tcp(2049), "NFS (TLS) from voxhost tasks")
        self.task_sg.add_egress_rule(self.efs_sg, ec2.Port.tcp(2049), "NFS (TLS) to EFS")
        service = ecs.Ec2Service(
            self, "Service", cluster=self.cluster, task_definition=self.task_definition,
            desired_count=cfg.min_tasks, security_groups=[self.task_sg],
            vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"),
            capacity_provider_strategies=[ecs.CapacityProviderStrategy(
                capacity_provider=self.capacity_provider.capacity_provider_name, weight=1)],
            min_healthy_percent=100, max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            health_check_grace_period=Duration.seconds(300),  # model load from EFS + warm-up
            placement_strategies=[ecs.PlacementStrategy.spread_across_instances()],
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_execute_command=cfg.ecs_exec,
        )
        # Created after (and deleted before) the cluster's capacity-provider
        # association: otherwise creation can race it, and deletion can strand
        # the association while the service still runs (aws-cdk#14732).
        Aspects.of(self.cluster).add(_ServiceAfterAssociation(service), priority=AspectPriority.DEFAULT)
        return service

    def _clean_teardown(self) -> None:
        """On stack deletion, force-delete the group: managed termination protection
        keeps its instances (and so the capacity provider and the stack) alive
        otherwise. Runs after the service is gone (it depends on this resource),
        as AWS's capacity-provider examples do."""
        asg_arn = self.format_arn(service="autoscaling", resource="autoScalingGroup",
                                  resource_name=f"*:autoScalingGroupName/{self.asg.auto_scaling_group_name}")
        self.force_delete = cr.AwsCustomResource(
            self, "ForceDeleteGpuAsg",
            on_delete=cr.AwsSdkCall(
                service="AutoScaling", action="deleteAutoScalingGroup",
                parameters={"AutoScalingGroupName": self.asg.auto_scaling_group_name, "ForceDelete": True},
                ignore_error_codes_matching="ValidationError"),  # already gone
            policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                actions=["autoscaling:DeleteAutoScalingGroup"], resources=[asg_arn])]),
            install_latest_aws_sdk=False)
        self.service.node.add_dependency(self.force_delete)

    def _outputs(self) -> None:
        dashboard_url = (f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                         f"#dashboards:name={self.dashboard.dashboard_name}")
        for name, value, what in [
            ("AlbDnsName", self.alb.load_balancer_dns_name, "point the API's DNS name (CNAME/alias) here"),
            ("ApiKeysSecretArn", self.api_keys.secret_arn, "API key hashes (field api_keys)"),
            ("ClusterName", self.cluster.cluster_name, "ECS cluster"),
            ("ServiceName", self.service.service_name, "ECS service (rolling restart after key changes)"),
            ("DashboardUrl", dashboard_url, "CloudWatch dashboard"),
            ("ModelsFileSystemId", self.file_system.file_system_id, "EFS with models and voices"),
        ]:
            CfnOutput(self, name, value=value, description=what)

    @staticmethod
    def _retention(days: int) -> logs.RetentionDays:
        allowed = {7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH", 60: "TWO_MONTHS", 90: "THREE_MONTHS",
                   180: "SIX_MONTHS", 365: "ONE_YEAR"}
        if days not in allowed:
            raise ValueError(f"log_retention_days must be one of {sorted(allowed)}")
        return getattr(logs.RetentionDays, allowed[days])


@jsii.implements(IAspect)
class _ServiceAfterAssociation:
    """CDK creates the cluster's capacity-provider association in an aspect at
    synthesis (mutating priority); this one runs after it and orders the service."""

    def __init__(self, service: ecs.Ec2Service):
        self.service = service

    def visit(self, node) -> None:
        if isinstance(node, ecs.CfnClusterCapacityProviderAssociations):
            self.service.node.add_dependency(node)


def gpu_agent_commands(namespace: str) -> list[str]:
    """User data: the CloudWatch agent publishing nvidia-smi utilisation per Auto Scaling group."""
    config = {
        "agent": {"metrics_collection_interval": 60},
        "metrics": {
            "namespace": f"{namespace}/gpu",
            "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}"},
            "aggregation_dimensions": [["AutoScalingGroupName"]],
            "metrics_collected": {"nvidia_gpu": {"measurement": ["utilization_gpu", "memory_used"]}},
        },
    }
    path = "/opt/aws/amazon-cloudwatch-agent/etc/voxhost-gpu.json"
    return [
        "(yum install -y amazon-cloudwatch-agent || dnf install -y amazon-cloudwatch-agent)",
        f"cat > {path} <<'EOF'\n{json.dumps(config, indent=1)}\nEOF",
        f"/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:{path}",
    ]

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

from voxhost_stack import cdn, checkov, edge, monitoring, nag, regions, spot
from voxhost_stack.config import StackConfig
from voxhost_stack.scaling import Pool

EFS_MOUNT = "/mnt/efs"
VOICES_DIR = f"{EFS_MOUNT}/voices"  # VOXHOST_VOICES_DIR: designed voices and consents, shared
APP_UID = 10001  # the Dockerfile's non-root user; EFS access point writes as it
# Alarms that stop and roll back a deployment in progress (monitoring.py names them so).
ROLLBACK_ALARMS = ("ErrorRateHigh", "AlbTarget5xx", "AlbElb5xx")
# Placeholder API key ("name:sha256hex"): no key hashes to zeros, so the server
# is closed until an operator stores real hashes in the secret.
API_KEYS_PLACEHOLDER = "unset:" + "0" * 64


class VoxhostStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig | None = None,
                 base_name: str | None = None, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        self.config = cfg = config or StackConfig()
        self.base_name = base_name or construct_id  # the environment's name, whatever the region

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
        self.gpu_groups = [(self.asg.auto_scaling_group_name, "")]  # (group, alarm-name prefix)
        self.log_group = logs.LogGroup(
            self, "ServiceLogs", retention=self._retention(cfg.log_retention_days),
            encryption_key=self.key, removal_policy=RemovalPolicy.RETAIN)
        self.api_keys = self._api_keys(cfg)
        self.task_role = self._task_role(cfg)
        dedicated = cfg.pools == "dedicated"
        # Combined: one service runs STT and TTS on the GPU instances. Dedicated: that service
        # keeps its ids and serves STT only; a TTS service runs on its own instances (CPU by
        # default, as the planner prices TTS), each pool scaling on its own signal.
        self.task_definition, self.container = self._task(cfg, "stt" if dedicated else "combined")
        self.service = self._service(cfg, self.task_definition, self.capacity_provider, "")
        self.force_delete = self._clean_teardown(self.asg, "ForceDeleteGpuAsg")
        self.service.node.add_dependency(self.force_delete)
        if dedicated:
            self.pools = [Pool("stt", "Stt", self.service, f"{cfg.service_name}-stt", sessions=True,
                               work=("SttQueued", "SttInFlight"), min_tasks=cfg.floor_tasks, max_tasks=cfg.max_tasks)]
            if cfg.tts_device == "cpu":
                self.tts_capacity_provider, self.tts_asg = self._cpu_capacity(cfg)
                self.tts_force_delete = self._clean_teardown(self.tts_asg, "ForceDeleteCpuAsg")
            else:
                self.tts_capacity_provider, self.tts_asg, self.tts_force_delete = \
                    self.capacity_provider, self.asg, self.force_delete
            self.tts_task_definition, self.tts_container = self._task(cfg, "tts")
            self.tts_service = self._service(cfg, self.tts_task_definition, self.tts_capacity_provider, "Tts")
            self.tts_service.node.add_dependency(self.tts_force_delete)
            self.pools.append(Pool("tts", "Tts", self.tts_service, f"{cfg.service_name}-tts", sessions=False,
                                   work=("TtsQueued", "TtsInFlight"), min_tasks=cfg.tts_min_tasks,
                                   max_tasks=cfg.tts_max_tasks))
        else:
            self.pools = [Pool("combined", "", self.service, cfg.service_name, sessions=True,
                               work=("QueueDepth", "InFlight"), min_tasks=cfg.floor_tasks,
                               max_tasks=cfg.max_tasks)]
        self.alb, self.target_group, self.web_acl = edge.add_edge(self, cfg)
        self.target_groups = [self.target_group, *([self.tts_target_group] if dedicated else [])]
        self._drain_on_deregistration(cfg, self.container, self.target_group)
        if dedicated:
            self._drain_on_deregistration(cfg, self.tts_container, self.tts_target_group)
        monitoring.add_monitoring(self, cfg)
        spot.add_spot_drain(self, cfg)
        regions.add_latency_record(self, cfg)
        regions.add_voices_sync(self, cfg)
        cdn.add_cdn(self, cfg)
        self._outputs()
        nag.suppress(self)
        checkov.skip(self)

    def _api_keys(self, cfg: StackConfig):
        """The API-keys secret. Several regions: the primary's, replicated by Secrets Manager to the
        others (a change is everywhere within seconds; tasks read it at start, so a rolling restart
        per region applies it: runbook step 9); the other regions read their replica by name."""
        multi = len(cfg.regions) > 1
        name = regions.api_keys_secret_name(self.base_name) if multi else None
        if multi and not regions.is_primary(self):
            return secretsmanager.Secret.from_secret_name_v2(self, "ApiKeys", name)
        return secretsmanager.Secret(
            self, "ApiKeys", encryption_key=self.key, secret_name=name,
            replica_regions=[secretsmanager.ReplicaRegion(region=r) for r in cfg.regions[1:]] if multi else None,
            description="voxhost API keys as name:sha256hex,... in field api_keys (VOXHOST_API_KEYS)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"api_keys": API_KEYS_PLACEHOLDER}),
                generate_string_key="generated"))

    # --- network ---
    def _network(self, cfg: StackConfig) -> ec2.Vpc:
        nat = cfg.egress == "nat"
        vpc = ec2.Vpc(
            self, "Vpc", max_azs=cfg.max_azs, nat_gateways=(cfg.max_azs if cfg.nat_per_az else 1) if nat else 0,
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
            # Kept from tasks for the OS and the agents (the task's limit is sized below it).
            f"echo ECS_RESERVED_MEMORY={cfg.host_reserved_memory_mib} >> /etc/ecs/ecs.config",
            *gpu_agent_commands(cfg.metric_namespace))
        template = ec2.LaunchTemplate(
            self, "GpuTemplate", machine_image=image, role=role, security_group=self.instance_sg,
            user_data=user_data, require_imdsv2=True, http_put_response_hop_limit=2,
            block_devices=[ec2.BlockDevice(device_name="/dev/xvda", volume=ec2.BlockDeviceVolume.ebs(
                cfg.instance_volume_gb, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3,
                throughput=cfg.instance_volume_throughput_mibps))],
        )
        asg = autoscaling.AutoScalingGroup(
            self, "GpuAsg", vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"),
            # Empty at creation: ECS managed scaling adds instances as tasks need them,
            # so the stack never waits on GPU instances it has no tasks for.
            # A reserved base stays running (the RIs are paid for anyway); otherwise empty at creation.
            min_capacity=cfg.reserved_base, max_capacity=cfg.max_instances, capacity_rebalance=True,
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=template,
                launch_template_overrides=[autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(t))
                                           for t in cfg.instance_types],
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_base_capacity=cfg.on_demand_base_capacity,
                    # The on-demand base takes the first type (the one RIs / a Savings Plan were bought for).
                    on_demand_allocation_strategy=autoscaling.OnDemandAllocationStrategy.PRIORITIZED,
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

    def _cpu_capacity(self, cfg: StackConfig):
        """The dedicated layout's TTS instances: CPU types (the ECS-optimised AL2023 AMI), mixed spot
        and on demand like the GPU group, their own capacity provider."""
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            "echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true >> /etc/ecs/ecs.config",
            "echo ECS_AWSVPC_BLOCK_IMDS=true >> /etc/ecs/ecs.config",
            f"echo ECS_RESERVED_MEMORY={cfg.host_reserved_memory_mib} >> /etc/ecs/ecs.config")
        template = ec2.LaunchTemplate(
            self, "CpuTemplate", machine_image=ecs.EcsOptimizedImage.amazon_linux2023(ecs.AmiHardwareType.STANDARD),
            role=self.instance_role, security_group=self.instance_sg, user_data=user_data, require_imdsv2=True,
            http_put_response_hop_limit=2,
            block_devices=[ec2.BlockDevice(device_name="/dev/xvda", volume=ec2.BlockDeviceVolume.ebs(
                30, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3))])
        asg = autoscaling.AutoScalingGroup(
            self, "CpuAsg", vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"),
            min_capacity=0, max_capacity=max(cfg.tts_max_tasks, int(cfg.tts_max_tasks * cfg.instance_headroom)),
            capacity_rebalance=True,
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=template,
                launch_template_overrides=[autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(t))
                                           for t in cfg.tts_instance_types],
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_base_capacity=cfg.on_demand_base,
                    on_demand_percentage_above_base_capacity=cfg.on_demand_percent_above_base,
                    spot_allocation_strategy=autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED)))
        provider = ecs.AsgCapacityProvider(
            self, "CpuCapacity", auto_scaling_group=asg, enable_managed_scaling=True, target_capacity_percent=100,
            enable_managed_termination_protection=True, enable_managed_draining=True,
            machine_image_type=ecs.MachineImageType.AMAZON_LINUX_2, spot_instance_draining=True)
        self.cluster.add_asg_capacity_provider(provider, spot_instance_draining=True)
        return provider, asg

    # --- the task: one GPU, the design's 4 vCPU / 15 GiB, models on EFS ---
    def _task_role(self, cfg: StackConfig) -> iam.Role:
        task_role = iam.Role(self, "TaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                             description="voxhost server: mounts its EFS access point, reads its own target's health")
        self.file_system.grant(task_role, "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")
        # Scale-in protection while live sessions are open (ops/task_protection.py): the agent's
        # endpoint calls these with the task's own credentials, for this cluster's tasks only.
        task_role.add_to_policy(iam.PolicyStatement(
            actions=["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
            resources=[self.format_arn(service="ecs", resource="task",
                                       resource_name=f"{self.cluster.cluster_name}/*")]))
        return task_role

    def _task(self, cfg: StackConfig, pool: str):
        """The task of one pool: `combined` (STT and TTS on a GPU), `stt` (GPU) or `tts` (the TTS pool's
        instances: CPU by default)."""
        task_role = self.task_role
        tts = pool == "tts"
        gpu = not tts or cfg.tts_device == "gpu"
        prefix = "Tts" if tts else ""
        instance_types = cfg.tts_instance_types if tts and not gpu else cfg.instance_types
        td = ecs.Ec2TaskDefinition(self, f"{prefix}Task", network_mode=ecs.NetworkMode.AWS_VPC, task_role=task_role)
        td.add_volume(name="models", efs_volume_configuration=ecs.EfsVolumeConfiguration(
            file_system_id=self.file_system.file_system_id,
            transit_encryption="ENABLED",
            authorization_config=ecs.AuthorizationConfig(access_point_id=self.access_point.access_point_id,
                                                         iam="ENABLED")))
        repo = self.node.try_find_child("Repo") or ecr.Repository.from_repository_name(self, "Repo",
                                                                                       cfg.image_repository)
        env = {
            "VOXHOST_HOST": "0.0.0.0",
            "VOXHOST_PORT": str(cfg.container_port),
            # The dedicated layout: each pool loads only its own engines (an empty list loads none).
            "VOXHOST_STT_MODELS": "" if tts else cfg.stt_models,
            "VOXHOST_STT_DEVICE": "cuda" if gpu else "cpu",
            **({"VOXHOST_TTS_ENGINES": ""} if pool == "stt" else {}),
            **({"VOXHOST_TTS_DEVICE": "cpu"} if tts and not gpu else {}),
            "VOXHOST_DRAIN_TIMEOUT_S": str(cfg.drain_seconds),
            "VOXHOST_KEEPALIVE_TIMEOUT_S": str(cfg.keepalive_seconds),  # above the ALB idle timeout: no 502s
            "VOXHOST_EMF_ENABLED": "true",
            "VOXHOST_EMF_NAMESPACE": cfg.metric_namespace,
            "VOXHOST_EMF_SERVICE_NAME": cfg.service_name if pool == "combined" else f"{cfg.service_name}-{pool}",
            # The group mixes types; the server prices the one it runs on from its GPU's name.
            "VOXHOST_INSTANCE_TYPE": "auto" if gpu else instance_types[0],
            # Designed voices and their consents on EFS: every task sees each one, and none is
            # lost when a task goes (scale-in, spot, deploy).
            "VOXHOST_VOICES_DIR": VOICES_DIR,
            "VOXHOST_TASK_PROTECTION_MINUTES": str(cfg.task_protection_minutes),
            **({"VOXHOST_STT_DOWNLOAD_ROOT": self._models_root(cfg)} if cfg.stt_download_root and not tts else {}),
            **({"VOXHOST_MODELS_MANIFEST": f"{self._models_root(cfg)}/manifest.json"}
               if cfg.models_version and not tts else {}),
            **cfg.extra_env,
        }
        container = td.add_container(
            "voxhost",
            # The TTS pool on CPU instances runs the CPU image (deploy/docker/Dockerfile.cpu), which
            # `make release` pushes under the same tag with "-cpu".
            image=ecs.ContainerImage.from_ecr_repository(repo, self._image_tag(cfg) + ("" if gpu else "-cpu")),
            cpu=cfg.task_cpu, memory_limit_mib=cfg.memory_limit_mib(instance_types),
            memory_reservation_mib=cfg.memory_reservation_mib(gpu=gpu), gpu_count=1 if gpu else None,
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
        if cfg.models_bucket and not tts:
            self._models_sync(cfg, td, task_role, container)
        return td, container

    def _drain_on_deregistration(self, cfg: StackConfig, container: ecs.ContainerDefinition,
                                 target_group) -> None:
        """ECS sends SIGTERM only after the deregistration delay, when the ALB has
        already closed live sessions: the server watches its own target instead and
        drains on `draining` (ops/target_drain.py). DescribeTargetHealth has no
        resource-level permissions, so its Resource is "*"; it is read-only."""
        container.add_environment("VOXHOST_DRAIN_TARGET_GROUP_ARN", target_group.target_group_arn)
        container.add_environment("VOXHOST_DRAIN_POLL_INTERVAL_S", str(cfg.drain_poll_seconds))
        if container is self.container:
            self.task_role.add_to_principal_policy(iam.PolicyStatement(
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
            command=["s3", "sync", f"s3://{cfg.models_bucket}/models/"
                     + (f"{cfg.models_version}/" if cfg.models_version else ""),
                     self._models_root(cfg) if cfg.stt_download_root else f"{EFS_MOUNT}/models",
                     "--only-show-errors", "--no-progress"],
            # No CPU reservation and a small memory one: it runs before the server takes the instance.
            cpu=0, memory_reservation_mib=256, user=f"{APP_UID}:{APP_UID}",
            logging=ecs.LogDrivers.aws_logs(stream_prefix="models-sync", log_group=self.log_group,
                                            mode=ecs.AwsLogDriverMode.NON_BLOCKING))
        sync.add_mount_points(ecs.MountPoint(container_path=EFS_MOUNT, source_volume="models", read_only=False))
        server.add_container_dependencies(ecs.ContainerDependency(
            container=sync, condition=ecs.ContainerDependencyCondition.SUCCESS))
        server.add_environment("HF_HUB_OFFLINE", "1")  # a missing model fails at once, not on a hub timeout

    @staticmethod
    def _models_root(cfg: StackConfig) -> str:
        """Where the server reads its models: one directory per models version."""
        root = cfg.stt_download_root or f"{EFS_MOUNT}/models"
        return f"{root}/{cfg.models_version}" if cfg.models_version else root

    def _image_tag(self, cfg: StackConfig) -> str:
        existing = self.node.try_find_child("ImageTag")
        if existing is not None:
            return existing.value_as_string
        return cfg.image_tag or CfnParameter(
            self, "ImageTag", type="String", allowed_pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
            description="Image tag in the ECR repository (immutable tags; never 'latest')").value_as_string

    def _service(self, cfg: StackConfig, task_definition, capacity_provider, prefix: str) -> ecs.Ec2Service:
        if not hasattr(self, "task_sg"):
            self._task_security_group(cfg)
        tts = prefix == "Tts"
        service = ecs.Ec2Service(
            self, f"{prefix}Service", cluster=self.cluster, task_definition=task_definition,
            desired_count=cfg.tts_min_tasks if tts else cfg.floor_tasks, security_groups=[self.task_sg],
            vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"),
            capacity_provider_strategies=[ecs.CapacityProviderStrategy(
                capacity_provider=capacity_provider.capacity_provider_name, weight=1)],
            # 100/200: a deploy starts the new tasks before it stops old ones, so a full fleet
            # keeps its seats. On a spot notice ECS then waits for a replacement before it stops
            # the doomed task, longer than the 2 minutes; the drain does not wait for that: the
            # spot rule (spot.py) deregisters the task's target at once and the server drains on
            # it (ops/target_drain.py), so sessions and requests are done when the instance goes.
            min_healthy_percent=100, max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            # A deployment that raises the error rate or the 5xx counts rolls back (monitoring.py
            # creates the alarms under these names).
            deployment_alarms=ecs.DeploymentAlarmConfig(
                alarm_names=[self.alarm_name(a) for a in ROLLBACK_ALARMS],
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM),
            health_check_grace_period=Duration.seconds(300),  # model load from EFS + warm-up
            # AZs first, then instances: the two-task minimum sits in two AZs.
            placement_strategies=[ecs.PlacementStrategy.spread_across(ecs.BuiltInAttributes.AVAILABILITY_ZONE),
                                  ecs.PlacementStrategy.spread_across_instances()],
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_execute_command=cfg.ecs_exec,
        )
        # Created after (and deleted before) the cluster's capacity-provider
        # association: otherwise creation can race it, and deletion can strand
        # the association while the service still runs (aws-cdk#14732).
        Aspects.of(self.cluster).add(_ServiceAfterAssociation(service), priority=AspectPriority.DEFAULT)
        return service

    def _task_security_group(self, cfg: StackConfig) -> None:
        self.task_sg = ec2.SecurityGroup(self, "TaskSg", vpc=self.vpc, description="voxhost tasks",
                                         allow_all_outbound=False)
        self.efs_sg.add_ingress_rule(self.task_sg, ec2.Port.tcp(2049), "NFS (TLS) from voxhost tasks")
        self.task_sg.add_egress_rule(self.efs_sg, ec2.Port.tcp(2049), "NFS (TLS) to EFS")
        # Everything else a task calls is HTTPS: AWS APIs (ECR, Logs, Secrets Manager, ELB) and S3
        # (whose gateway endpoint answers on S3's public addresses), plus the model hub when egress
        # is NAT; without NAT there is no route out of the VPC for anything else. No other port or
        # protocol leaves. The task metadata and agent endpoints (169.254.170.2) are link-local:
        # security groups do not filter them.
        self.task_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443),
                                     "HTTPS only: AWS APIs, S3, and the model hub through NAT")

    def _clean_teardown(self, asg, construct_id: str) -> cr.AwsCustomResource:
        """On stack deletion, force-delete the group: managed termination protection
        keeps its instances (and so the capacity provider and the stack) alive
        otherwise. Runs after the service is gone (it depends on this resource),
        as AWS's capacity-provider examples do."""
        asg_arn = self.format_arn(service="autoscaling", resource="autoScalingGroup",
                                  resource_name=f"*:autoScalingGroupName/{asg.auto_scaling_group_name}")
        return cr.AwsCustomResource(
            self, construct_id,
            on_delete=cr.AwsSdkCall(
                service="AutoScaling", action="deleteAutoScalingGroup",
                parameters={"AutoScalingGroupName": asg.auto_scaling_group_name, "ForceDelete": True},
                ignore_error_codes_matching="ValidationError"),  # already gone
            policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                actions=["autoscaling:DeleteAutoScalingGroup"], resources=[asg_arn])]),
            install_latest_aws_sdk=False)

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
            ("AlarmTopicArn", self.alarm_topic.topic_arn, "every alarm and the budget: subscribe on-call here"),
            *([("TtsServiceName", self.tts_service.service_name, "ECS service of the TTS pool")]
              if self.config.pools == "dedicated" else []),
        ]:
            CfnOutput(self, name, value=value, description=what)

    def alarm_name(self, name: str) -> str:
        """Alarms the service's deployment watches are named, so the service can name them before
        they exist (they read its metrics, it reads their state)."""
        return f"{self.stack_name}-{name}"

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

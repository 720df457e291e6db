"""How long a scale-out takes, on paper: from the decision to a task the ALB sends players to.

No AWS account here, so nothing is timed; each input is a size or a rate with its
source (docs/deploy.md, "Start time on paper", has the table and the commands that
measure them on a first deployment). The sum is the scale-out cooldown the stack
sets and the start delay the scaling replay uses, so a bigger image slows both.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
MB = 1e6


@dataclass(frozen=True)
class ImageSize:
    """The GPU image's layers (EXTRAS=piper,aws,gpu), compressed as ECR stores them and on disk."""

    # assumed: nvidia/cuda:12.4.1-runtime-ubuntu22.04's library set (cuBLAS/cuBLASLt, cuFFT,
    # cuSPARSE, cuSOLVER, cuRAND, NPP, nvJPEG, NVRTC, NCCL) on Ubuntu 22.04; measure it
    # with `docker image inspect` after the first build (docs/deploy.md).
    base_compressed_gb: float = 1.6
    base_disk_gb: float = 3.4
    # measured: what `make install EXTRAS=piper,aws` puts in the image: the 82 distributions'
    # files (1.31 GB) and the assembled models (0.35 GB), gzip -6 to 0.97 GB; plus Python 3.11
    # from deadsnakes (~0.1 GB, assumed). docs/deploy.md "Start time on paper".
    app_compressed_gb: float = 1.0
    app_disk_gb: float = 1.76
    # measured: the gpu extra as the Makefile installs it (--no-deps): onnxruntime-gpu 1.25.1
    # (0.27 GB wheel, 0.45 GB installed) and cuDNN 9.28 (0.72 GB, 1.16 GB). Through pip's
    # resolver it also pulled cuBLAS 12.9 (0.58 GB, 0.86 GB) and NVRTC (0.09 GB, 0.23 GB).
    gpu_extra_compressed_gb: float = 0.99
    gpu_extra_disk_gb: float = 1.61

    @property
    def compressed_gb(self) -> float:
        return self.base_compressed_gb + self.app_compressed_gb + self.gpu_extra_compressed_gb

    @property
    def disk_gb(self) -> float:
        return self.base_disk_gb + self.app_disk_gb + self.gpu_extra_disk_gb


@dataclass(frozen=True)
class StartupEstimate:
    image: ImageSize
    # assumed: EC2 launch of a GPU instance, boot of the ECS GPU AMI, agent registration.
    instance_ready_s: float = 120.0
    # assumed: ECR in-region on a g4dn.xlarge (up to 25 Gbit/s): the docker pull reaches
    # ~200 MB/s over its 3 parallel layer downloads.
    pull_mb_per_s: float = 200.0
    # The gp3 root volume's throughput (the stack's instance_volume_throughput_mibps) bounds
    # the extraction; single-threaded gunzip is ~150 MB/s of output besides.
    extract_mb_per_s: float = 125.0
    # The STT model read from EFS (elastic throughput; large-v3-turbo fp16 is 1.6 GB) at
    # ~250 MB/s for one NFS client (assumed), then onto the GPU and warmed up.
    model_gb: float = 1.6
    efs_mb_per_s: float = 250.0
    warm_up_s: float = 30.0
    # The ALB's health check: 2 healthy checks 5 s apart after /ready turns 200 (edge.py).
    healthy_s: float = 10.0

    @property
    def pull_s(self) -> float:
        return self.image.compressed_gb * GB / (self.pull_mb_per_s * MB)

    @property
    def extract_s(self) -> float:
        return self.image.disk_gb * GB / (self.extract_mb_per_s * MB)

    @property
    def model_s(self) -> float:
        return self.model_gb * GB / (self.efs_mb_per_s * MB) + self.warm_up_s

    @property
    def total_seconds(self) -> int:
        total = self.instance_ready_s + self.pull_s + self.extract_s + self.model_s + self.healthy_s
        return int(-(-total // 30) * 30)  # up to the next half minute: the replay steps in minutes

    def rows(self) -> list[tuple[str, float]]:
        return [("instance launch, boot, ECS registration", self.instance_ready_s),
                (f"image pull ({self.image.compressed_gb:.2f} GB compressed)", self.pull_s),
                (f"image extraction ({self.image.disk_gb:.2f} GB on disk)", self.extract_s),
                (f"model from EFS ({self.model_gb:g} GB) and warm-up", self.model_s),
                ("ALB health checks", self.healthy_s)]


def estimate(cfg=None) -> StartupEstimate:
    throughput = getattr(cfg, "instance_volume_throughput_mibps", 125) if cfg is not None else 125
    return StartupEstimate(ImageSize(), extract_mb_per_s=float(throughput) * 1.048576)


if __name__ == "__main__":
    e = estimate()
    for what, seconds in e.rows():
        print(f"{seconds:7.0f} s  {what}")
    print(f"{e.total_seconds:7d} s  in all (rounded up to 30 s): the scale-out cooldown and the replay's start delay")

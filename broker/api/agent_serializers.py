"""Input and output serializers of the node agent API (the contract the agent program speaks)."""

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from common.numbers import DecimalNumberField

MAX_GPUS = 64
MAX_LEASE_REPORTS = 256
MAX_LOG_LINES = 500  # per heartbeat; the agent sends at most 200 and the rest in the next ones
MAX_LOG_LINE_CHARS = 2000
REASONS = ["exited", "oom", "image_pull_failed", "start_failed", "stopped", "lease_ended"]
MAX_CANDIDATES = 8
_HEX_ID = r"^0x[0-9a-fA-F]{1,8}$"


class AgentGpuSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(min_value=0, max_value=MAX_GPUS - 1)
    name = serializers.CharField(max_length=100, help_text='As the driver names it, e.g. "NVIDIA GeForce RTX 4090".')
    vram_gb = serializers.FloatField(min_value=0, max_value=1024)
    pci_device_id = serializers.RegexField(_HEX_ID, required=False, allow_null=True, help_text='e.g. "0x2684"')
    subsystem_vendor_id = serializers.RegexField(_HEX_ID, required=False, allow_null=True, help_text='e.g. "0x1043"')
    subsystem_device_id = serializers.RegexField(_HEX_ID, required=False, allow_null=True, help_text='e.g. "0x87b3"')
    candidates = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=MAX_CANDIDATES,
        help_text=(
            "Where the chip carries several models the agent cannot tell apart (an RX 6800 XT and an RX 6900 XT "
            "both have 16 GB), the models it may be; any of them matches the registration. `name` is then the "
            "PCI database's name of the chip."
        ),
    )


class AgentBenchmarkSerializer(serializers.Serializer[Any]):
    tflops = serializers.FloatField(
        min_value=0,
        max_value=100_000,
        required=False,
        allow_null=True,
        help_text="Measured dense FP16 TFLOPS of one GPU.",
    )
    mem_bandwidth_gbs = serializers.FloatField(
        min_value=0, max_value=100_000, required=False, allow_null=True, help_text="Measured memory bandwidth, GB/s."
    )


class AgentRegisterInputSerializer(serializers.Serializer[Any]):
    gpus = serializers.ListField(
        child=AgentGpuSerializer(), max_length=MAX_GPUS, help_text="One entry per detected GPU (may be empty)."
    )
    driver_version = serializers.CharField(max_length=40, allow_blank=True)
    cuda_version = serializers.CharField(max_length=20, required=False, allow_null=True, allow_blank=True)
    cpu_cores = serializers.IntegerField(min_value=1, max_value=4096)
    ram_gb = serializers.IntegerField(min_value=1, max_value=65_536)
    disk_gb = serializers.IntegerField(min_value=0, max_value=10_000_000)
    inet_down_mbps = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False, allow_null=True)
    inet_up_mbps = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False, allow_null=True)
    benchmark = AgentBenchmarkSerializer(required=False, allow_null=True)
    agent_version = serializers.CharField(max_length=40)

    def validate_gpus(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        indexes = [gpu["index"] for gpu in value]
        if len(indexes) != len(set(indexes)):
            raise serializers.ValidationError("Each GPU index may appear once.")
        return value


class AgentRegisterOutputSerializer(serializers.Serializer[Any]):
    node_id = serializers.IntegerField()
    verified = serializers.BooleanField()
    hardware_mismatch = serializers.CharField(help_text="'' when the hardware matches the registration.")
    heartbeat_interval_s = serializers.IntegerField()
    benchmark_flag = serializers.CharField(help_text="'' unless the benchmark is far from the catalog figure.")
    challenge_pending = serializers.BooleanField(help_text="A compute challenge waits: fetch /agent/challenge.")
    public_host = serializers.CharField(help_text="The node's public address ('' until the provider sets it).")
    port_range = serializers.ListField(
        child=serializers.IntegerField(), help_text="[first, last] host port the agent maps container ports to."
    )


class AgentGpuTelemetrySerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(min_value=0, max_value=MAX_GPUS - 1)
    utilisation = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    temperature_c = serializers.IntegerField(min_value=-50, max_value=150, required=False, allow_null=True)


class AgentLeaseReportSerializer(serializers.Serializer[Any]):
    lease_id = serializers.IntegerField(min_value=1)
    seq = serializers.IntegerField(min_value=0, help_text="Per-lease report sequence number (usage is counted once).")
    gpu_seconds = serializers.FloatField(min_value=0, help_text="GPU-seconds used in [interval_start, interval_end].")
    utilisation = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    interval_start = serializers.DateTimeField()
    interval_end = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=["running", "exited"], default="running")
    storage_gb = DecimalNumberField(
        max_digits=10,
        decimal_places=3,
        min_value=Decimal(0),
        max_value=Decimal(1_000_000),
        default=Decimal(0),
        help_text="Storage (GB) the lease held during the interval; billed per GB-month when the listing prices it.",
    )
    egress_bytes = serializers.IntegerField(
        min_value=0,
        max_value=10**15,
        default=0,
        help_text="Bytes the lease sent out during the interval; billed per GB when the listing prices it.",
    )

    exit_code = serializers.IntegerField(
        min_value=-(2**31), max_value=2**31 - 1, required=False, allow_null=True, help_text="On `exited`: the code."
    )
    reason = serializers.ChoiceField(
        choices=REASONS,
        required=False,
        help_text="On `exited`: why it stopped. A non-zero exit, `oom`, `image_pull_failed` or `start_failed` "
        "fails the job; a zero exit (or `lease_ended`) completes it.",
    )
    detail = serializers.CharField(max_length=300, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["interval_end"] < attrs["interval_start"]:
            raise serializers.ValidationError(
                f"lease {attrs['lease_id']} report {attrs['seq']}: interval_end is before interval_start."
            )
        return attrs


class AgentPortSerializer(serializers.Serializer[Any]):
    container = serializers.IntegerField(min_value=1, max_value=65535)
    host = serializers.IntegerField(min_value=1, max_value=65535)
    protocol = serializers.ChoiceField(choices=["tcp", "udp"], default="tcp")


class AgentPhaseEventSerializer(serializers.Serializer[Any]):
    lease_id = serializers.IntegerField(min_value=1)
    phase = serializers.ChoiceField(choices=["pulling", "starting", "running"])
    at = serializers.DateTimeField()
    ports = AgentPortSerializer(many=True, required=False, help_text="On `running`: container port → host port.")


class AgentLogLineSerializer(serializers.Serializer[Any]):
    lease_id = serializers.IntegerField(min_value=1)
    seq = serializers.IntegerField(min_value=1, max_value=2**31 - 1, help_text="Per-lease line number (kept once).")
    at = serializers.DateTimeField()
    stream = serializers.ChoiceField(choices=["stdout", "stderr"])
    text = serializers.CharField(max_length=MAX_LOG_LINE_CHARS, allow_blank=True, trim_whitespace=False)


class AgentHeartbeatInputSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField(
        min_value=0,
        max_value=2**63 - 1,
        help_text="Unique per node for the node's lifetime (persist it, or start from the Unix time in ms).",
    )
    status = serializers.CharField(max_length=20, default="ok")
    gpus = serializers.ListField(child=AgentGpuTelemetrySerializer(), required=False, max_length=MAX_GPUS)
    leases = serializers.ListField(child=AgentLeaseReportSerializer(), required=False, max_length=MAX_LEASE_REPORTS)
    events = serializers.ListField(
        child=AgentPhaseEventSerializer(),
        required=False,
        max_length=MAX_LEASE_REPORTS,
        help_text="Workload phase changes (pulling, starting, running with its port mapping).",
    )
    logs = serializers.ListField(
        child=AgentLogLineSerializer(),
        required=False,
        max_length=MAX_LOG_LINES,
        help_text=f"New workload output lines, at most {MAX_LOG_LINES} of at most {MAX_LOG_LINE_CHARS} characters.",
    )

    def validate_leases(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = [(report["lease_id"], report["seq"]) for report in value]
        if len(keys) != len(set(keys)):
            raise serializers.ValidationError("Each (lease_id, seq) may appear once per heartbeat.")
        return value


class AgentIgnoredLeaseSerializer(serializers.Serializer[Any]):
    lease_id = serializers.IntegerField()
    seq = serializers.IntegerField()
    reason = serializers.CharField()


class AgentHeartbeatOutputSerializer(serializers.Serializer[Any]):
    accepted = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="True when this seq was already received; nothing changed.")
    max_seq = serializers.IntegerField(
        allow_null=True, help_text="On a duplicate: the highest seq received from this node (else null)."
    )
    next_heartbeat_s = serializers.IntegerField()
    activated_leases = serializers.ListField(child=serializers.IntegerField())
    ended_leases = serializers.ListField(
        child=serializers.IntegerField(), help_text="Leases this heartbeat reported as exited: ended, GPUs freed."
    )
    ignored_leases = AgentIgnoredLeaseSerializer(many=True, help_text="Reports for leases that are not this node's.")
    challenge_pending = serializers.BooleanField(help_text="A compute challenge waits: fetch /agent/challenge.")


class AgentLeaseStartSerializer(serializers.Serializer[Any]):
    lease_id = serializers.IntegerField()
    ssh = serializers.BooleanField(help_text="Expose port 22 and inject `ssh_keys` (PUBLIC_KEY, authorized_keys).")
    ssh_keys = serializers.ListField(child=serializers.CharField(), help_text="The customer's public SSH keys.")
    job_id = serializers.IntegerField()
    image = serializers.CharField()
    command = serializers.CharField(allow_blank=True)
    env = serializers.JSONField(help_text="Environment variables for the container.")
    ports = serializers.JSONField(help_text="Ports the workload exposes, as booked.")
    gpu_slots = serializers.ListField(child=serializers.IntegerField())
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    state = serializers.CharField()


class AgentLeaseStopSerializer(serializers.Serializer[Any]):
    lease_id = serializers.IntegerField()
    reason = serializers.CharField()
    state = serializers.CharField()


class AgentLeasesOutputSerializer(serializers.Serializer[Any]):
    start = AgentLeaseStartSerializer(many=True)
    stop = AgentLeaseStopSerializer(many=True)

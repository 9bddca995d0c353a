"""Who and what: providers, customers, lenders, the GPU catalog, fleet assessments, nodes."""

from django.conf import settings
from django.db import models


class Tier(models.TextChoices):
    TRAINING = "training", "Training"
    FINE_TUNING = "fine_tuning", "Fine-tuning"
    INFERENCE = "inference", "Inference"
    UNSUITABLE = "unsuitable", "Unsuitable"


TIER_RANK = {Tier.UNSUITABLE: 0, Tier.INFERENCE: 1, Tier.FINE_TUNING: 2, Tier.TRAINING: 3}


class Vendor(models.TextChoices):
    NVIDIA = "nvidia", "NVIDIA"
    AMD = "amd", "AMD"


class GPUModel(models.Model):
    """A catalog entry with real specifications; `tier`/`tier_reason` come from the tier rule."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    vendor = models.CharField(max_length=10, choices=Vendor.choices)
    architecture = models.CharField(max_length=40)
    vram_gb = models.DecimalField(max_digits=6, decimal_places=1)
    mem_bandwidth_gbs = models.PositiveIntegerField()
    fp16_tflops = models.DecimalField(max_digits=7, decimal_places=1, help_text="Dense FP16/BF16 tensor TFLOPS")
    fp32_tflops = models.DecimalField(max_digits=7, decimal_places=1)
    compute_capability = models.DecimalField(max_digits=3, decimal_places=1, null=True, blank=True)
    tensor_cores = models.BooleanField(default=False, help_text="Tensor (NVIDIA) or matrix (AMD) cores")
    framework_support = models.BooleanField(default=True, help_text="Current CUDA/ROCm framework support")
    nvlink = models.BooleanField(default=False)
    tdp_w = models.PositiveIntegerField()
    launch_year = models.PositiveSmallIntegerField()
    launch_price_usd = models.PositiveIntegerField(null=True, blank=True)
    is_mining_card = models.BooleanField(default=False)
    aliases = models.JSONField(default=list, blank=True)
    tier = models.CharField(max_length=12, choices=Tier.choices, db_index=True)
    tier_reason = models.CharField(max_length=300)
    # Reference market price per GPU-hour in micro-dollars, used before the market has listings.
    reference_price_micros = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["vendor", "-fp16_tflops", "slug"]

    def __str__(self) -> str:
        return self.name


class Provider(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider")
    company = models.CharField(max_length=200)
    contact_name = models.CharField(max_length=200)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    payout_currency = models.CharField(max_length=3, default="USD")
    stripe_account_id = models.CharField(max_length=64, blank=True)
    payout_account_ready = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.company


class Customer(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer")
    company = models.CharField(max_length=200, blank=True)
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.company or self.user.get_username()


class Lender(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lender")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class FleetAssessment(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="assessments")
    created_at = models.DateTimeField(auto_now_add=True)
    utilisation = models.DecimalField(max_digits=4, decimal_places=3, help_text="Assumed utilisation, 0–1")
    total_gpus = models.PositiveIntegerField(default=0)
    qualifying_gpus = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, help_text="The computed report, as returned by the API")

    class Meta:
        ordering = ["-created_at"]

    @property
    def qualifying_share(self) -> float:
        return self.qualifying_gpus / self.total_gpus if self.total_gpus else 0.0


class FleetAssessmentLine(models.Model):
    assessment = models.ForeignKey(FleetAssessment, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    raw_model = models.CharField(max_length=200)
    count = models.PositiveIntegerField()
    gpu_model = models.ForeignKey(GPUModel, null=True, blank=True, on_delete=models.PROTECT)

    class Meta:
        ordering = ["position"]


class NodeStatus(models.TextChoices):
    REGISTERED = "registered", "Registered (agent not seen yet)"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"


class Region(models.TextChoices):
    US = "us", "North America"
    EU = "eu", "Europe"
    ASIA = "asia", "Asia"
    SA = "sa", "South America"
    OCEANIA = "oceania", "Oceania"
    AFRICA = "africa", "Africa"


class Node(models.Model):
    """A provider's machine: what was registered, what its agent reports, and its listing."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=100)
    region = models.CharField(max_length=10, choices=Region.choices)
    country = models.CharField(max_length=2)
    gpu_model = models.ForeignKey(GPUModel, on_delete=models.PROTECT, related_name="nodes")
    gpu_count = models.PositiveSmallIntegerField()
    cpu_cores = models.PositiveIntegerField(default=0)
    ram_gb = models.PositiveIntegerField(default=0)
    disk_gb = models.PositiveIntegerField(default=0)
    inet_down_mbps = models.PositiveIntegerField(default=0)
    inet_up_mbps = models.PositiveIntegerField(default=0)
    # Listing: prices per GPU-hour in micro-dollars; availability window (null = open-ended).
    price_micros = models.BigIntegerField(default=0, help_text="On-demand ask per GPU-hour, micro-USD")
    min_bid_micros = models.BigIntegerField(default=0, help_text="Minimum interruptible bid per GPU-hour")
    storage_price_micros = models.BigIntegerField(default=0, help_text="Storage per GB-month, micro-USD (0 = free)")
    egress_price_micros = models.BigIntegerField(default=0, help_text="Egress per GB sent, micro-USD (0 = free)")
    available_from = models.DateTimeField(null=True, blank=True)
    available_until = models.DateTimeField(null=True, blank=True)
    listed = models.BooleanField(default=False)
    cordoned = models.BooleanField(default=False, help_text="Staff: take no new leases")
    # Where customers reach their workloads: the node's public address and the host ports the agent maps to.
    public_host = models.CharField(max_length=253, blank=True, help_text="Public IP address or DNS name")
    port_range_start = models.PositiveIntegerField(default=40000)
    port_range_end = models.PositiveIntegerField(default=40999)
    # Agent and verification.
    token_prefix = models.CharField(max_length=12, blank=True)
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    token_revoked_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=NodeStatus.choices, default=NodeStatus.REGISTERED)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    agent_registered_at = models.DateTimeField(null=True, blank=True)
    agent_report = models.JSONField(default=dict, blank=True)
    hardware_mismatch = models.CharField(max_length=500, blank=True)
    dlperf = models.FloatField(
        null=True, blank=True, help_text="TFLOPS per GPU measured by the latest passed compute challenge"
    )
    benchmark_flag = models.CharField(max_length=300, blank=True)
    challenge_verdict = models.CharField(
        max_length=8,
        blank=True,
        db_index=True,
        help_text="Verdict of the latest finished compute challenge: passed, failed, or '' (none yet)",
    )
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    reliability = models.FloatField(default=0.0, help_text="Uptime over the rolling 30-day window, 0–1")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="node_name_unique_per_provider"),
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="node_gpu_count_positive"),
            models.CheckConstraint(
                condition=models.Q(port_range_end__gte=models.F("port_range_start")), name="node_port_range_ordered"
            ),
            models.CheckConstraint(condition=models.Q(price_micros__gte=0), name="node_price_non_negative"),
            models.CheckConstraint(condition=models.Q(min_bid_micros__gte=0), name="node_min_bid_non_negative"),
            models.CheckConstraint(
                condition=models.Q(storage_price_micros__gte=0, egress_price_micros__gte=0),
                name="node_storage_egress_price_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["status", "listed", "verified"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.gpu_count}× {self.gpu_model.name})"


class NodeUptime(models.Model):
    """Seconds a node was seen up within one hour bucket; reliability sums these over 30 days."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="uptime")
    hour = models.DateTimeField()
    up_seconds = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "hour"], name="node_uptime_unique_hour")]


class NodeHeartbeat(models.Model):
    """A received heartbeat, keyed by (node, seq): a repeated sequence number changes nothing."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="heartbeats")
    seq = models.BigIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, default="ok")
    payload = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "seq"], name="heartbeat_unique_seq")]
        indexes = [models.Index(fields=["node", "-received_at"])]


class ChallengeReason(models.TextChoices):
    REGISTRATION = "registration", "Agent registration"
    IDLE = "idle", "Random check while idle"
    STAFF = "staff", "Requested by staff"


class ChallengeState(models.TextChoices):
    PENDING = "pending", "Waiting for the agent"
    DELIVERED = "delivered", "Computing (seed delivered)"
    ANSWERED = "answered", "Answered, rows requested"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class NodeChallenge(models.Model):
    """A compute challenge (see marketplace/services/challenge.py and rigshift_agent/challenge.py).

    The clock runs on the server: from `delivered_at` (the seed handed to the agent) to `answered_at` (the
    agent's commitment received)."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="challenges")
    reason = models.CharField(max_length=12, choices=ChallengeReason.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=10, choices=ChallengeState.choices, default=ChallengeState.PENDING)
    seed = models.CharField(max_length=64)
    params = models.JSONField(help_text="gpus, items, m, k, rounds, deadline_s")
    gpu_model = models.ForeignKey(GPUModel, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    digest = models.CharField(max_length=64, blank=True)
    backend = models.CharField(max_length=60, blank=True, help_text="What the agent computed with")
    claimed_s = models.FloatField(null=True, blank=True, help_text="Seconds the agent says its multiplications took")
    observed_s = models.FloatField(null=True, blank=True, help_text="Seconds from seed delivered to answer received")
    picks = models.JSONField(default=list, blank=True, help_text="[gpu, item, row] the server asked to see")
    measured_tflops = models.FloatField(null=True, blank=True, help_text="Per GPU, bounded by the observed time")
    verdict = models.CharField(max_length=500, blank=True, help_text="Why it failed ('' when it passed)")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["node", "state"])]

    def __str__(self) -> str:
        return f"challenge #{self.pk} of node {self.node_id} ({self.state})"


class NodeChange(models.Model):
    """An agent report that changed what a node is (issue 12 point 4): its GPU model or count, or its CPU, RAM, disk
    or bandwidth by more than NODE_SPEC_TOLERANCE (marketplace/services/verification.py). It took the node's
    verification away until staff look again; `old` and `new` keep both sides for staff to compare."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="changes")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="node_changes")
    fields = models.JSONField(default=list, help_text="Names of the changed figures")
    old = models.JSONField(default=dict, help_text="The figures before, by name")
    new = models.JSONField(default=dict, help_text="The figures the agent now claims, by name")
    was_verified = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"node {self.node_id} changed {', '.join(self.fields)}"

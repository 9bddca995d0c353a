"""The deal: jobs (bookings) with requirements, their timeline, and leases on GPU slots."""

from django.db import models

from marketplace.models import Customer, GPUModel, Node, Tier


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    MATCHED = "matched", "Matched"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    PREEMPTED = "preempted", "Preempted"
    # A job a match round could not process, or whose placement's commit conflicted: set aside with its
    # reason (`quarantine_reason`) so every other job still matches; the customer may cancel it.
    QUARANTINED = "quarantined", "Quarantined"


TERMINAL_JOB_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class WorkloadPhase(models.TextChoices):
    PULLING = "pulling", "Pulling image"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    EXITED = "exited", "Exited"


class EndReason(models.TextChoices):
    EXITED = "exited", "Exited"
    OOM = "oom", "Out of memory"
    IMAGE_PULL_FAILED = "image_pull_failed", "Image pull failed"
    START_FAILED = "start_failed", "Could not start"
    STOPPED = "stopped", "Stopped by the platform"
    LEASE_ENDED = "lease_ended", "Booked time over"


class JobMode(models.TextChoices):
    ON_DEMAND = "on_demand", "On demand"
    INTERRUPTIBLE = "interruptible", "Interruptible"
    RESERVED = "reserved", "Reserved"


class Placement(models.TextChoices):
    """Which feasible offer an on-demand or reserved job takes (never above its max price)."""

    CHEAPEST = "cheapest", "Cheapest offer"
    PERF_PER_DOLLAR = "perf_per_dollar", "Best performance per dollar"
    RELIABLE = "reliable", "Most reliable"


class Job(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=12, choices=JobState.choices, default=JobState.PENDING, db_index=True)
    # Requirements.
    gpu_count = models.PositiveSmallIntegerField()
    min_gpu_ram = models.DecimalField(max_digits=6, decimal_places=1, null=True, blank=True)
    gpu_models = models.ManyToManyField(GPUModel, blank=True, related_name="+")
    min_compute_cap = models.DecimalField(max_digits=3, decimal_places=1, null=True, blank=True)
    min_tier = models.CharField(max_length=12, choices=Tier.choices, blank=True)
    regions = models.JSONField(default=list, blank=True)
    min_reliability = models.FloatField(null=True, blank=True)
    verified_only = models.BooleanField(default=True)
    min_inet_down = models.PositiveIntegerField(null=True, blank=True)
    min_cpu_cores_per_gpu = models.PositiveIntegerField(null=True, blank=True)
    min_ram_gb_per_gpu = models.PositiveIntegerField(null=True, blank=True)
    min_disk_gb_per_gpu = models.PositiveIntegerField(null=True, blank=True)
    node = models.ForeignKey(
        Node,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The node the job was booked on from an offer (it takes that node or none)",
    )
    placement = models.CharField(max_length=16, choices=Placement.choices, default=Placement.CHEAPEST)
    # Workload.
    image = models.CharField(max_length=300)
    command = models.TextField(blank=True)
    env = models.JSONField(default=dict, blank=True)
    ports = models.JSONField(default=list, blank=True)
    template = models.CharField(max_length=40, blank=True, help_text="The workload template booked, if any")
    ssh = models.BooleanField(default=False, help_text="Port 22 exposed with the customer's SSH keys")
    # Mode and price (micro-USD per GPU-hour).
    mode = models.CharField(max_length=14, choices=JobMode.choices, default=JobMode.ON_DEMAND)
    max_price_micros = models.BigIntegerField(null=True, blank=True)
    bid_micros = models.BigIntegerField(null=True, blank=True)
    earliest_start = models.DateTimeField(null=True, blank=True)
    latest_start = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField()
    # Money and bookkeeping.
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the booking request, to tell a replay from a different request"
    )
    held_micros = models.BigIntegerField(default=0, help_text="Escrow held for this job")
    retries = models.PositiveSmallIntegerField(default=0)
    max_retries = models.PositiveSmallIntegerField(default=3)
    pending_reason = models.TextField(blank=True)
    quarantine_reason = models.TextField(blank=True, help_text="why a match round set this job aside")
    # How the workload is doing and how it ended, as the agent reports it.
    phase = models.CharField(max_length=10, choices=WorkloadPhase.choices, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="job_idempotency_key_unique_per_customer",
            ),
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="job_gpu_count_positive"),
            models.CheckConstraint(condition=models.Q(held_micros__gte=0), name="job_held_non_negative"),
        ]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"job {self.pk} {self.name} ({self.state})"

    @property
    def price_limit_micros(self) -> int | None:
        return self.bid_micros if self.mode == JobMode.INTERRUPTIBLE else self.max_price_micros


class JobEvent(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    from_state = models.CharField(max_length=12, blank=True)
    to_state = models.CharField(max_length=12)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]


class LeaseState(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"
    PREEMPTED = "preempted", "Preempted"
    FAILED = "failed", "Failed"


class Lease(models.Model):
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="leases")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="leases")
    gpu_slots = models.JSONField(default=list, help_text="GPU indices on the node")
    gpu_count = models.PositiveSmallIntegerField()
    # Consumable node resources the lease holds for its period (GPUs × the job's per-GPU minimums).
    cpu_cores = models.PositiveIntegerField(default=0, help_text="CPU cores of the node this lease holds")
    ram_gb = models.PositiveIntegerField(default=0, help_text="RAM (GB) of the node this lease holds")
    disk_gb = models.PositiveIntegerField(default=0, help_text="Disk (GB) of the node this lease holds")
    price_micros = models.BigIntegerField(help_text="Agreed price per GPU-hour, micro-USD")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=LeaseState.choices, default=LeaseState.RESERVED, db_index=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    port_map = models.JSONField(
        default=list, blank=True, help_text="[{container, host, protocol}] as the agent published them"
    )
    placement_note = models.CharField(max_length=300, blank=True, help_text="Why the job was placed on this node")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")), name="lease_period_valid")
        ]


class LogStream(models.TextChoices):
    STDOUT = "stdout", "stdout"
    STDERR = "stderr", "stderr"


class SshKey(models.Model):
    """A customer's public SSH key, put into the containers of its jobs that ask for SSH."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=100, blank=True)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=60, help_text="SHA256:… as ssh-keygen -l prints it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["customer", "fingerprint"], name="sshkey_once_per_customer")]

    def __str__(self) -> str:
        return f"{self.name or 'key'} {self.fingerprint}"


class JobLogLine(models.Model):
    """One line of a job's workload output, as the agent shipped it; the last part of each job's log is kept.

    (lease, seq) is the agent's numbering (unique: a resent line is dropped); the row id is the order the
    customer reads in (`?after=`)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    lease = models.ForeignKey(Lease, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveIntegerField()
    at = models.DateTimeField()
    stream = models.CharField(max_length=6, choices=LogStream.choices)
    text = models.TextField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["lease", "seq"], name="joblogline_once_per_lease_seq")]
        indexes = [models.Index(fields=["job", "id"])]


class LeaseSlot(models.Model):
    """One GPU of one node held by a lease for a period. PostgreSQL forbids overlaps outright."""

    lease = models.ForeignKey(Lease, on_delete=models.CASCADE, related_name="slots")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="+")
    slot = models.PositiveSmallIntegerField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["node", "ends_at"])]


class MatchRound(models.Model):
    """One matching round: what it considered, what it placed, how long each phase took, why the rest did not."""

    shard = models.CharField(max_length=40, default="default")
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    jobs_considered = models.PositiveIntegerField(default=0)
    nodes_considered = models.PositiveIntegerField(default=0)
    placed = models.PositiveIntegerField(default=0)
    preempted = models.PositiveIntegerField(default=0)
    snapshot_ms = models.FloatField(default=0.0)
    engine_ms = models.FloatField(default=0.0)
    commit_ms = models.FloatField(default=0.0)
    total_ms = models.FloatField(default=0.0)
    unplaced_reasons = models.JSONField(default=dict, blank=True, help_text="reason code → number of jobs")
    phases = models.JSONField(default=dict, blank=True, help_text="finer timings, ms")
    note = models.CharField(max_length=200, blank=True)
    # Every round is recorded, failed or not (issue 12): a failed round says why.
    status = models.CharField(max_length=10, choices=[("ok", "OK"), ("failed", "Failed")], default="ok")
    error = models.TextField(blank=True)
    quarantined = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"round {self.pk} {self.shard}: {self.placed}/{self.jobs_considered}"


class PriceOfferState(models.TextChoices):
    PENDING = "pending", "Waiting for the provider"
    ACCEPTED = "accepted", "Accepted (leased)"
    DECLINED = "declined", "Declined by the provider"
    LAPSED = "lapsed", "Lapsed (the job or the node could no longer take it)"


class PriceOffer(models.Model):
    """A staff assignment priced below the provider's ask (or an interruptible min_bid): issue 12 point 5.

    No lease is ever priced below the provider's floor without the provider's consent: staff's override becomes this
    offer, and only the provider's acceptance (`/provider/offers/`) leases the job at the offered price."""

    job = models.ForeignKey("Job", on_delete=models.CASCADE, related_name="price_offers")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="price_offers")
    price_micros = models.BigIntegerField(help_text="Offered price per GPU-hour, micro-USD")
    floor_micros = models.BigIntegerField(help_text="The provider's ask (or min bid) when offered")
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=10, choices=PriceOfferState.choices, default=PriceOfferState.PENDING)
    outcome = models.CharField(max_length=300, blank=True)
    lease = models.OneToOneField("Lease", null=True, blank=True, on_delete=models.SET_NULL, related_name="offer")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price_micros__gte=0), name="price_offer_price_non_negative")
        ]

    def __str__(self) -> str:
        return f"offer #{self.pk}: job {self.job_id} on node {self.node_id}"

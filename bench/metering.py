"""`python -m bench.metering`: usage ingestion throughput with exactly-once dedup, on the configured database.

Simulates node agents heartbeating: each node reports one usage record per lease per interval; a share
of the heartbeats is delivered twice (retries) and the order is shuffled (late, out-of-order delivery).
Reports are ingested through `billing.services.metering.usage_ingest` in batches of `--batch` reports (an
API worker coalescing heartbeats; `--batch 8` is one heartbeat of an 8-lease node per call). Checks that
exactly the unique reports were stored, then settles them (`usage_settle_pending`) and runs ledger_verify.

Last line: `events_per_s=<reports submitted per second, duplicates included>`.
"""

import argparse
import random
import time
import uuid

from bench._setup import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="unique usage reports")
    parser.add_argument("--batch", type=int, default=500, help="reports per usage_ingest call")
    parser.add_argument("--dup", type=float, default=0.2, help="share of reports delivered twice")
    parser.add_argument("--leases", type=int, default=200)
    parser.add_argument("--no-settle", action="store_true")
    args = parser.parse_args()
    setup()
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from billing.models import LeaseAccount, UsageRecord
    from billing.selectors.ledger import ledger_verify
    from billing.services.metering import usage_ingest
    from billing.services.settlement import lease_account_open, usage_settle_pending
    from billing.services.wallet import escrow_hold, wallet_credit

    run = uuid.uuid4().int % 10**9
    node_id = run  # one synthetic node id per run keeps runs apart
    lease_base = run * 10_000
    rng = random.Random(7)
    per_lease = args.events // args.leases
    reports = [
        {
            "lease_id": lease_base + lease,
            "seq": seq,
            "gpu_seconds": 15,
            "utilisation": 0.9,
            "interval_start": "2026-11-27T10:00:00Z",
            "interval_end": "2026-11-27T10:00:15Z",
            "state": "running",
        }
        for lease in range(args.leases)
        for seq in range(per_lease)
    ]
    stream = reports + rng.sample(reports, int(len(reports) * args.dup))
    rng.shuffle(stream)
    print(f"database={connection.vendor} unique={len(reports)} submitted={len(stream)} batch={args.batch}")

    start = time.perf_counter()
    new = 0
    for i in range(0, len(stream), args.batch):
        new += usage_ingest(node_id=node_id, reports=stream[i : i + args.batch])
    elapsed = time.perf_counter() - start
    stored = UsageRecord.objects.filter(node_id=node_id).count()
    assert new == len(reports) == stored, f"exactly-once violated: new={new} stored={stored} unique={len(reports)}"
    print(f"ingest: {len(stream)} reports in {elapsed:.2f}s; new={new} stored={stored} (exactly once)")

    if not args.no_settle:
        customer = User.objects.create(username=f"bench-customer-{run}")
        provider = User.objects.create(username=f"bench-provider-{run}")
        wallet_credit(user=customer, amount_micros=10**12, key=f"bench-topup:{run}")
        escrow_hold(user=customer, amount_micros=10**12, key=f"bench-hold:{run}")
        for lease in range(args.leases):
            lease_account_open(
                lease_ref=lease_base + lease,
                job_ref=lease_base + lease,
                customer_user=customer,
                provider_user=provider,
                node_id=node_id,
                price_micros=2_450_000,
                gpu_count=1,
                hold_micros=10**12,
                active_from=timezone.now() - timedelta(days=30),
            )
            # the node heartbeated all along: the broker clock of its leases reads now
            LeaseAccount.objects.filter(node_id=node_id).update(seen_until=timezone.now())
        t0 = time.perf_counter()
        settled = usage_settle_pending()
        print(f"settle: {settled} lease settlements covering {stored} reports in {time.perf_counter() - t0:.2f}s")
        report = ledger_verify()
        assert report.ok, report.violations
        print("ledger_verify: OK")
    print(f"events_per_s={len(stream) / elapsed:.0f}")


if __name__ == "__main__":
    main()

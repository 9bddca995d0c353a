"""`python -m bench.ledger`: balanced, guarded ledger transfers per second on the configured database.

Customers' guarded wallets pay guarded escrows and provider payables (guards checked in the writing
transaction, accounts locked in primary-key order, idempotency key per transfer). Modes: `--mode batch`
posts through `ledger_transfer_many` (`--batch` transfers per database transaction, as settlement does);
`--mode single` calls `ledger_transfer` once per transfer (one database transaction each). A share of the
transfers is replayed with the same key to exercise idempotency; the run ends with ledger_verify.

Last line: `transfers_per_s=<new transfers per second>`.
"""

import argparse
import random
import time
import uuid

from bench._setup import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transfers", type=int, default=50_000)
    parser.add_argument("--mode", choices=["batch", "single"], default="batch")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=100, help="customers (and as many providers)")
    parser.add_argument("--replay", type=float, default=0.05, help="share of transfers replayed with the same key")
    args = parser.parse_args()
    setup()
    from django.contrib.auth.models import User
    from django.db import connection

    from billing.models import AccountKind
    from billing.selectors.ledger import ledger_verify
    from billing.services.ledger import Transfer, account_get, ledger_transfer, ledger_transfer_many

    run = uuid.uuid4().hex[:10]
    rng = random.Random(3)
    users = User.objects.bulk_create([User(username=f"bench-{run}-{i}") for i in range(args.accounts * 2)])
    clearing = account_get(kind=AccountKind.GATEWAY_CLEARING)
    wallets = [account_get(kind=AccountKind.CUSTOMER_WALLET, user=u) for u in users[: args.accounts]]
    escrows = [account_get(kind=AccountKind.CUSTOMER_ESCROW, user=u) for u in users[: args.accounts]]
    payables = [account_get(kind=AccountKind.PROVIDER_PAYABLE, user=u) for u in users[args.accounts :]]
    ledger_transfer_many(
        transfers=[
            Transfer(key=f"bench:{run}:fund:{w.pk}", kind="topup", legs=[(clearing, -(10**12)), (w, 10**12)])
            for w in wallets
        ]
    )

    def make(i: int) -> Transfer:
        c = rng.randrange(args.accounts)
        amount = rng.randrange(1, 5_000_000)
        if i % 2:
            legs = [(wallets[c], -amount), (escrows[c], amount)]
        else:
            fee = amount // 7
            legs = [(wallets[c], -amount), (payables[rng.randrange(args.accounts)], amount - fee), (clearing, fee)]
        return Transfer(key=f"bench:{run}:{i}", kind="bench", legs=legs)

    transfers = [make(i) for i in range(args.transfers)]
    stream = transfers + rng.sample(transfers, int(len(transfers) * args.replay))
    print(
        f"database={connection.vendor} mode={args.mode} batch={args.batch} "
        f"transfers={len(transfers)} replays={len(stream) - len(transfers)}"
    )
    start = time.perf_counter()
    if args.mode == "batch":
        for i in range(0, len(stream), args.batch):
            ledger_transfer_many(transfers=stream[i : i + args.batch])
    else:
        for t in stream:
            ledger_transfer(key=t.key, kind=t.kind, legs=t.legs)
    elapsed = time.perf_counter() - start
    report = ledger_verify()
    assert report.ok, report.violations
    print(
        f"posted {len(transfers)} new transfers (+{len(stream) - len(transfers)} replays) in {elapsed:.2f}s; "
        "ledger_verify OK"
    )
    print(f"transfers_per_s={len(transfers) / elapsed:.0f}")


if __name__ == "__main__":
    main()

"""Run by test_matching_concurrency in separate processes.

Usage: python -m tests.broker.matching_worker MODE START_AT COUNT [CUSTOMER_ID]
  MODE round  : run COUNT rounds through match_round_run (shard lock)
  MODE rogue  : run COUNT rounds WITHOUT the shard lock (the database must still refuse double booking)
  MODE book   : book COUNT jobs for CUSTOMER_ID (each booking triggers an eager round in this process)
Prints one JSON line: {"placed": n, "refused": n, "booked": n}.
"""

import json
import os
import sys
import time


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from django.db import IntegrityError, OperationalError

    from broker.services import matching
    from broker.services.jobs import job_book
    from common.errors import Conflict
    from marketplace.models import Customer

    mode, start_at, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))
    out = {"placed": 0, "refused": 0, "booked": 0}
    if mode == "book":
        customer = Customer.objects.select_related("user").get(pk=int(sys.argv[4]))
        data = {"gpu_count": 1, "image": "img:1", "max_price": "1.00", "duration_hours": "1"}
        for _ in range(count):
            job_book(customer=customer, data=data)
            out["booked"] += 1
    else:
        for _ in range(count):
            try:
                if mode == "rogue":
                    rnd = matching._round(shard="default", now=None)
                else:
                    rnd = matching.match_round_run(wait_s=10)
                out["placed"] += rnd.placed
            except (IntegrityError, OperationalError, Conflict):
                out["refused"] += 1  # another matcher won the race (or a deadlock was broken): rolled back
            time.sleep(0.01)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

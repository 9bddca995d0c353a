"""Run by test_booking_concurrency in separate processes: book one job, print the outcome as JSON.

Usage: python -m tests.broker.booking_worker CUSTOMER_ID START_AT KEY   (KEY "-" for none)
"""

import json
import os
import sys
import time


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
    import django

    django.setup()
    from broker.services.jobs import job_book_ex
    from common.errors import DomainError
    from marketplace.models import Customer

    customer_id, start_at, key = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    customer = Customer.objects.select_related("user").get(pk=customer_id)
    data = {"gpu_count": 1, "image": "img:1", "max_price": "1.00", "duration_hours": "10"}
    time.sleep(max(0.0, start_at - time.time()))
    try:
        job, created = job_book_ex(customer=customer, data=data, idempotency_key=None if key == "-" else key)
        print(json.dumps({"status": 201 if created else 200, "job": job.pk}))
    except DomainError as exc:
        print(json.dumps({"status": exc.status_code, "detail": exc.message}))


if __name__ == "__main__":
    main()

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from billing.models import WhopConnection, WhopEvent
from billing.services import whop_event_process

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


@shared_task(name="billing.tasks.process_whop_event", bind=True, ignore_result=True, max_retries=MAX_ATTEMPTS, soft_time_limit=60, time_limit=90)
def process_whop_event(self, event_id: int) -> None:
    """Process a stored delivery, retrying with exponential backoff (2 s, 4 s, … about 8 minutes)."""
    try:
        whop_event_process(event_id=event_id)
    except WhopEvent.DoesNotExist:
        return
    except Exception as error:
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 1)) from error


@shared_task(name="billing.tasks.sweep_whop_events", ignore_result=True, soft_time_limit=50, time_limit=60)
def sweep_whop_events() -> int:
    """Re-enqueue deliveries whose enqueue was lost (broker down when they arrived)."""
    cutoff = timezone.now() - timedelta(minutes=2)
    ids = list(
        WhopEvent.objects.filter(status=WhopEvent.Status.PENDING, received_at__lt=cutoff).values_list("id", flat=True)[:1000]
    )
    for event_id in ids:
        process_whop_event.delay(event_id)
    return len(ids)


@shared_task(name="billing.tasks.reconcile_whop_payments", ignore_result=True, soft_time_limit=240, time_limit=300)
def reconcile_whop_payments() -> int:
    """Record payments no webhook brought, for every connection with an API key."""
    from billing.reconciliation import whop_payments_reconcile

    recorded = 0
    for connection in WhopConnection.objects.exclude(api_key_encrypted="").exclude(company_id="").select_related("creator"):
        try:
            recorded += whop_payments_reconcile(connection=connection)
        except Exception as error:  # one store's bad key or outage must not stop the others
            logger.warning("reconciliation failed for connection %s: %r", connection.pk, error)
    return recorded

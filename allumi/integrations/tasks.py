from celery import shared_task

from allumi.integrations.services import deliveries_enqueue_due, delivery_attempt


@shared_task(name="integrations.tasks.deliver", ignore_result=True, soft_time_limit=60, time_limit=90)
def deliver(delivery_id: int, attempts: int) -> None:
    """One attempt at one delivery. `attempts` is the claim token: a duplicate of this task, or
    one that arrives after the delivery moved on, does nothing. Retries are scheduled on the row
    (next_attempt_at) and sent by `deliver_due`, not by Celery."""
    delivery_attempt(delivery_id=delivery_id, attempts=attempts)


@shared_task(name="integrations.tasks.deliver_due", ignore_result=True, soft_time_limit=50, time_limit=60)
def deliver_due() -> int:
    """Enqueue every delivery whose next attempt is due (beat: every 15 s)."""
    return deliveries_enqueue_due()

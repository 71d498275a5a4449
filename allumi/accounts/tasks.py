from celery import shared_task

from allumi.accounts.emails import EmailNotSent, email_deliver, emails_queued_stale

# Six attempts over about twelve minutes; the longest wait stays well below the broker's visibility
# timeout, so a waiting retry is never delivered twice.
EMAIL_MAX_RETRIES = 5


@shared_task(
    name="allumi.accounts.tasks.deliver_email", bind=True, ignore_result=True,
    autoretry_for=(EmailNotSent,), max_retries=EMAIL_MAX_RETRIES,
    retry_backoff=30, retry_backoff_max=300, retry_jitter=True,
    soft_time_limit=30, time_limit=60,
)
def deliver_email(self, email_id: int) -> None:
    email_deliver(email_id=email_id, last_attempt=self.request.retries >= self.max_retries)


@shared_task(name="allumi.accounts.tasks.sweep_queued_emails", ignore_result=True, soft_time_limit=50, time_limit=60)
def sweep_queued_emails() -> int:
    """Enqueue emails whose enqueue was lost (the broker was down when they were queued)."""
    email_ids = emails_queued_stale()
    for email_id in email_ids:
        deliver_email.delay(email_id)
    return len(email_ids)

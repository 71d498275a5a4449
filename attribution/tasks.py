from datetime import date

from celery import shared_task
from django.utils import timezone

from attribution.conversions import conversion_attribute
from attribution.models import Conversion
from attribution.notifications import (
    conversion_alert_send,
    conversion_alerts_due,
    weekly_report_send,
    weekly_reports_due,
)
from attribution.services import clicks_flush


@shared_task(name="attribution.tasks.flush_clicks", ignore_result=True, soft_time_limit=50, time_limit=60)
def flush_clicks() -> int:
    """Drain the click buffer into the database (beat runs this every second; a lock keeps one)."""
    return clicks_flush()


@shared_task(
    name="attribution.tasks.attribute_conversion", ignore_result=True, bind=True, max_retries=5,
    soft_time_limit=60, time_limit=90,
)
def attribute_conversion(self, conversion_id: int) -> None:
    try:
        conversion_attribute(conversion_id=conversion_id)
    except Conversion.DoesNotExist:
        return  # deleted meanwhile: nothing to attribute
    except Exception as error:
        raise self.retry(exc=error, countdown=2**self.request.retries) from error


@shared_task(name="attribution.tasks.sweep_pending_conversions", ignore_result=True, soft_time_limit=50, time_limit=60)
def sweep_pending_conversions() -> int:
    """Enqueue conversions left pending (their enqueue was lost, e.g. while the broker was down)."""
    from attribution.conversions import conversions_pending_stale

    conversion_ids = conversions_pending_stale()
    for conversion_id in conversion_ids:
        attribute_conversion.delay(conversion_id)
    return len(conversion_ids)


@shared_task(name="attribution.tasks.recompute_creator", ignore_result=True, soft_time_limit=840, time_limit=900)
def recompute_creator(recompute_id: int) -> None:
    """Re-attribute a creator's conversions in chunks; resumes from its cursor if restarted."""
    from attribution.conversions import recompute_run

    recompute_run(recompute_id=recompute_id)


@shared_task(name="attribution.tasks.sweep_recomputes", ignore_result=True, soft_time_limit=50, time_limit=60)
def sweep_recomputes() -> int:
    """Resume, from their cursor, recomputes whose worker died (beat: every minute)."""
    from attribution.conversions import recomputes_abandoned

    recompute_ids = recomputes_abandoned()
    for recompute_id in recompute_ids:
        recompute_creator.delay(recompute_id)
    return len(recompute_ids)


@shared_task(name="attribution.tasks.run_rollups", ignore_result=True, soft_time_limit=240, time_limit=300)
def run_rollups() -> dict:
    """Fold new clicks and credit changes into the dashboard's rollups (beat: every 30 s)."""
    from attribution.rollups import rollups_run

    return rollups_run()


@shared_task(name="attribution.tasks.send_conversion_alerts", ignore_result=True, soft_time_limit=50, time_limit=60)
def send_conversion_alerts() -> int:
    """Send the conversion alerts whose window has closed (beat: every minute)."""
    batch_ids = conversion_alerts_due()
    for batch_id in batch_ids:
        send_conversion_alert.delay(batch_id)
    return len(batch_ids)


@shared_task(name="attribution.tasks.send_conversion_alert", ignore_result=True, soft_time_limit=50, time_limit=60)
def send_conversion_alert(batch_id: int) -> None:
    conversion_alert_send(batch_id=batch_id)


@shared_task(name="attribution.tasks.send_weekly_reports", ignore_result=True, soft_time_limit=50, time_limit=60)
def send_weekly_reports() -> int:
    """Enqueue today's weekly reports (beat: daily at 08:00 UTC); each is sent once per week."""
    today = timezone.now().date()
    creator_ids = weekly_reports_due(today=today)
    for creator_id in creator_ids:
        send_weekly_report.delay(creator_id, today.isoformat())
    return len(creator_ids)


@shared_task(name="attribution.tasks.send_weekly_report", ignore_result=True, soft_time_limit=120, time_limit=150)
def send_weekly_report(creator_id: int, day: str) -> None:
    weekly_report_send(creator_id=creator_id, today=date.fromisoformat(day))

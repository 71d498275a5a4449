from celery import shared_task

from attribution.conversions import conversion_attribute
from attribution.models import Conversion
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


@shared_task(name="attribution.tasks.run_rollups", ignore_result=True, soft_time_limit=240, time_limit=300)
def run_rollups() -> dict:
    """Fold new clicks and credit changes into the dashboard's rollups (beat: every 30 s)."""
    from attribution.rollups import rollups_run

    return rollups_run()

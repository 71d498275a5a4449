from celery import shared_task

from attribution.services import clicks_flush


@shared_task(name="attribution.tasks.flush_clicks", ignore_result=True, soft_time_limit=50, time_limit=60)
def flush_clicks() -> int:
    """Drain the click buffer into the database (beat runs this every second; a lock keeps one)."""
    return clicks_flush()

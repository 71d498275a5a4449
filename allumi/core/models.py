from django.db import models


class Alert(models.Model):
    """The state of one alert check, so an incident is announced once and its recovery too."""

    name = models.CharField(max_length=64, unique=True)
    firing = models.BooleanField(default=False)
    since = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_message = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({'firing' if self.firing else 'ok'})"

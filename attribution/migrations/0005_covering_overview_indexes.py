"""Covering indexes for the overview: conversion counts by status with their average confidence,
and a period's breakdowns, answered from the index alone (index-only scans). The conversion
index replaces the plain (creator, occurred_at) one it extends."""

from django.db import migrations, models

from allumi.core.migration_operations import AddIndexConcurrentlyOnPostgres, RemoveIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("attribution", "0004_click_network_time"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="conversion",
            index=models.Index(fields=["creator", "occurred_at"], include=["status", "confidence", "id"], name="conversion_creator_time_cover"),
        ),
        RemoveIndexConcurrentlyOnPostgres(model_name="conversion", name="conversion_creator_time"),
        AddIndexConcurrentlyOnPostgres(
            model_name="dailyclickdimension",
            index=models.Index(fields=["creator", "day"], include=["dimension", "value", "clicks"], name="daily_dimension_creator_day"),
        ),
    ]

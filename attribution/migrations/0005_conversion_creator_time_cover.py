"""A covering index for the overview: conversion counts by status with their average confidence
answered from the index alone (an index-only scan). It replaces the plain (creator, occurred_at)
index it extends."""

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
    ]

"""Receivers connected to templates, which tenant classes must inherit."""

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from tests.testapp.models import Project

calls: list[tuple[str, object]] = []


@receiver(post_save, sender=Project)
def project_saved(sender, instance, created, **kwargs):
    calls.append(("post_save", instance))


@receiver(pre_delete, sender=Project, dispatch_uid="testapp.project_deleting")
def project_deleting(sender, instance, **kwargs):
    calls.append(("pre_delete", instance))

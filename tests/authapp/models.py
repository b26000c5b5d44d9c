"""The tenant user template of the test project (TENANCY_USER_MODEL = "authapp.Member")."""

from django.db import models

from tenancy.auth import AbstractTenantUser


class Member(AbstractTenantUser):
    display_name = models.CharField(max_length=100, blank=True)

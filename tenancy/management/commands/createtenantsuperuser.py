"""``manage.py createtenantsuperuser --tenant KEY``: a superuser of one tenant's users.

Django's ``createsuperuser`` for the tenant user template (``TENANCY_USER_MODEL``):
the user is created in the tenant's own table, with ``is_superuser`` (every
permission within that tenant, and no access to the admin, which serves the
shared staff users). Interactive by default; with ``--noinput`` the values come
from the options or from ``DJANGO_SUPERUSER_<FIELD>`` environment variables,
the password from ``DJANGO_SUPERUSER_PASSWORD`` (without it the user gets an
unusable password), as Django's command.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.contrib.auth import password_validation
from django.core import exceptions
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import capfirst

from tenancy.auth import AbstractTenantUser, get_tenant_user_template
from tenancy.exceptions import TenantDeleted, TenantNotReady
from tenancy.management.tenant_keys import find_tenant
from tenancy.models import AbstractTenant


class Command(BaseCommand):
    help = (
        "Create a superuser among one tenant's users (TENANCY_USER_MODEL), as createsuperuser "
        "does for the shared users. --tenant names the tenant by its schema or its "
        "TENANCY_TENANT_LOOKUP_FIELD value (--pk: by its primary key)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tenant",
            required=True,
            metavar="KEY",
            help="the tenant: its schema or lookup value (e.g. its name)",
        )
        parser.add_argument(
            "--pk", action="store_true", help="the KEY of --tenant is the tenant's primary key"
        )
        parser.add_argument("--username", help="the superuser's username (its USERNAME_FIELD)")
        parser.add_argument("--email", help="the superuser's email address")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="ask nothing: take the values from the options or from DJANGO_SUPERUSER_* "
            "environment variables, the password from DJANGO_SUPERUSER_PASSWORD (without it "
            "the superuser cannot log in with a password)",
        )
        for name in _other_required_fields():
            parser.add_argument(f"--{name}", help=f"the superuser's {name}")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdin = options.get("stdin", sys.stdin)
        try:
            template = get_tenant_user_template()
        except exceptions.ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        tenant = find_tenant(options["tenant"], by_pk=options["pk"])
        try:
            model = template.for_tenant(tenant)
        except (TenantNotReady, TenantDeleted) as exc:
            raise CommandError(f"Cannot create a user in tenant {_name(tenant)}: {exc}") from exc
        if options["interactive"]:
            if not getattr(self.stdin, "isatty", lambda: False)():
                raise CommandError(
                    "Not running in a terminal: give the values with --noinput, --username, "
                    "--email and DJANGO_SUPERUSER_PASSWORD."
                )
            data = self._ask(model, options)
        else:
            data = _from_options(model, options)
        manager: Any = model._default_manager
        user = manager.create_superuser(**data)
        if options["verbosity"] >= 1:
            self.stdout.write(
                f"Superuser {user.get_username()!r} created in tenant {_name(tenant)} "
                f"(schema {tenant.db_schema})."
            )

    def _ask(self, model: type[AbstractTenantUser], options: dict[str, Any]) -> dict[str, Any]:
        """Prompt for every value not given as an option, then for the password twice."""
        data: dict[str, Any] = {}
        for name, given in _fields(model, options):
            field: Any = model._meta.get_field(name)
            while name not in data:
                raw = given if given is not None else input(f"{capfirst(field.verbose_name)}: ")
                given = None
                try:
                    data[name] = _clean(model, name, raw)
                except CommandError as exc:
                    self.stderr.write(f"Error: {exc}")
        while "password" not in data:
            password = getpass.getpass()
            if password != getpass.getpass("Password (again): "):
                self.stderr.write("Error: Your passwords didn't match.")
                continue
            if not password.strip():
                self.stderr.write("Error: Blank passwords aren't allowed.")
                continue
            try:
                candidate: Any = model(**data)
                password_validation.validate_password(password, candidate)
            except exceptions.ValidationError as exc:
                self.stderr.write("\n".join(exc.messages))
                answer = input("Bypass password validation and create user anyway? [y/N]: ")
                if answer.lower() != "y":
                    continue
            data["password"] = password
        return data


def _other_required_fields() -> list[str]:
    """The ``REQUIRED_FIELDS`` of the tenant user template that get an option of their own."""
    try:
        template = get_tenant_user_template()
    except exceptions.ImproperlyConfigured:
        return []  # reported by handle()
    declared = {template.USERNAME_FIELD, template.get_email_field_name(), "username", "email"}
    return [name for name in template.REQUIRED_FIELDS if name not in declared]


def _fields(model: type[AbstractTenantUser], options: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return ``(field name, value given as an option or None)``: the username, then the
    email and the other required fields."""
    email = model.get_email_field_name()
    names = [model.USERNAME_FIELD]
    names += [email] if _has_field(model, email) else []
    names += [name for name in model.REQUIRED_FIELDS if name not in names]
    option = {model.USERNAME_FIELD: "username", email: "email"}
    return [(name, options.get(option.get(name, name))) for name in names]


def _from_options(model: type[AbstractTenantUser], options: dict[str, Any]) -> dict[str, Any]:
    """Return the superuser's values from the options and DJANGO_SUPERUSER_* (--noinput)."""
    data: dict[str, Any] = {}
    for name, given in _fields(model, options):
        value = given if given is not None else os.environ.get(f"DJANGO_SUPERUSER_{name.upper()}")
        if not value:
            field: Any = model._meta.get_field(name)
            if name != model.USERNAME_FIELD and field.blank:
                data[name] = ""  # an optional field of the user, such as its email
                continue
            option = "username" if name == model.USERNAME_FIELD else name
            raise CommandError(
                f"You must use --{option} (or DJANGO_SUPERUSER_{name.upper()}) with --noinput."
            )
        data[name] = _clean(model, name, value)
    data["password"] = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
    return data


def _clean(model: type[AbstractTenantUser], name: str, raw: str) -> Any:
    """Validate one value as its field does; refuse a username the tenant already has."""
    field: Any = model._meta.get_field(name)
    try:
        value = field.clean(raw, None)
    except exceptions.ValidationError as exc:
        raise CommandError("; ".join(exc.messages)) from None
    if name == model.USERNAME_FIELD:
        value = model.normalize_username(value)
        if model._default_manager.filter(**{name: value}).exists():
            raise CommandError(f"That {field.verbose_name} is already taken in this tenant.")
    return value


def _has_field(model: type[AbstractTenantUser], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except exceptions.FieldDoesNotExist:
        return False
    return True


def _name(tenant: AbstractTenant) -> str:
    return ", ".join(str(part) for part in tenant.natural_key())

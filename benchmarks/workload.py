# ruff: noqa: E501 - the reference lists are kept as the generator has them, one model a line
"""The reference "crm" workload: 20 tenant models and a history of ten migrations.

The model list and the nine later fields are copied from the generator of the
shared reference workload (``shared/workload/crm.py``, "Generate the 'crm'
benchmark workload"), so the benchmarks measure both libraries on the same
work without depending on that directory at run time. Instead of printing a
``models.py``, :func:`declare` defines the classes in the calling module, for
any base class and any stage of the history: stage ``k`` has the first ``k``
fields of :data:`EXTRA`, so stage 0 is the initial state (migration 0001) and
stage 9 the final one (migration 0010).
"""

from __future__ import annotations

import os
from typing import Any

from django.db import models

#: (model, [(field, declaration)]) of the initial state, as in the reference generator.
MODELS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Pipeline", [("name", "models.CharField(max_length=100, unique=True)")]),
    ("Stage", [("pipeline", "models.ForeignKey('Pipeline', models.CASCADE, related_name='stages')"),
               ("name", "models.CharField(max_length=100)"), ("position", "models.PositiveIntegerField(default=0)")]),
    ("Account", [("name", "models.CharField(max_length=200, db_index=True)"), ("domain", "models.CharField(max_length=200, blank=True)"),
                 ("created", "models.DateTimeField(auto_now_add=True)"), ("revenue", "models.DecimalField(max_digits=14, decimal_places=2, null=True)")]),
    ("Contact", [("account", "models.ForeignKey('Account', models.CASCADE, related_name='contacts')"),
                 ("email", "models.EmailField(unique=True)"), ("first_name", "models.CharField(max_length=100)"),
                 ("last_name", "models.CharField(max_length=100)"), ("phone", "models.CharField(max_length=40, blank=True)")]),
    ("Tag", [("label", "models.SlugField(unique=True)")]),
    ("Deal", [("account", "models.ForeignKey('Account', models.CASCADE)"), ("stage", "models.ForeignKey('Stage', models.PROTECT)"),
              ("owner", "models.ForeignKey('Contact', models.SET_NULL, null=True, blank=True)"), ("title", "models.CharField(max_length=200)"),
              ("amount", "models.DecimalField(max_digits=14, decimal_places=2)"), ("tags", "models.ManyToManyField('Tag', blank=True)"),
              ("closed", "models.BooleanField(default=False, db_index=True)")]),
    ("Activity", [("deal", "models.ForeignKey('Deal', models.CASCADE)"), ("kind", "models.CharField(max_length=20)"),
                  ("at", "models.DateTimeField(db_index=True)"), ("payload", "models.JSONField(default=dict)")]),
    ("Note", [("deal", "models.ForeignKey('Deal', models.CASCADE)"), ("body", "models.TextField()")]),
    ("Product", [("sku", "models.CharField(max_length=64, unique=True)"), ("name", "models.CharField(max_length=200)"),
                 ("price", "models.DecimalField(max_digits=10, decimal_places=2)")]),
    ("Invoice", [("account", "models.ForeignKey('Account', models.PROTECT)"), ("number", "models.CharField(max_length=32, unique=True)"),
                 ("issued", "models.DateField()"), ("paid", "models.BooleanField(default=False)")]),
    ("LineItem", [("invoice", "models.ForeignKey('Invoice', models.CASCADE, related_name='lines')"), ("product", "models.ForeignKey('Product', models.PROTECT)"),
                  ("quantity", "models.PositiveIntegerField(default=1)"), ("unit_price", "models.DecimalField(max_digits=10, decimal_places=2)")]),
    ("Payment", [("invoice", "models.ForeignKey('Invoice', models.CASCADE)"), ("amount", "models.DecimalField(max_digits=14, decimal_places=2)"),
                 ("received", "models.DateTimeField()")]),
    ("Ticket", [("contact", "models.ForeignKey('Contact', models.CASCADE)"), ("subject", "models.CharField(max_length=200)"),
                ("status", "models.CharField(max_length=16, default='open', db_index=True)"), ("opened", "models.DateTimeField(auto_now_add=True)")]),
    ("Comment", [("ticket", "models.ForeignKey('Ticket', models.CASCADE)"), ("author", "models.ForeignKey('Contact', models.SET_NULL, null=True)"),
                 ("body", "models.TextField()")]),
    ("Attachment", [("ticket", "models.ForeignKey('Ticket', models.CASCADE)"), ("filename", "models.CharField(max_length=255)"),
                    ("size", "models.BigIntegerField()")]),
    ("Project", [("account", "models.ForeignKey('Account', models.CASCADE)"), ("name", "models.CharField(max_length=200)"),
                 ("members", "models.ManyToManyField('Contact', blank=True)")]),
    ("Milestone", [("project", "models.ForeignKey('Project', models.CASCADE)"), ("due", "models.DateField(null=True)"),
                   ("title", "models.CharField(max_length=200)")]),
    ("TimeEntry", [("milestone", "models.ForeignKey('Milestone', models.CASCADE)"), ("minutes", "models.PositiveIntegerField()"),
                   ("logged", "models.DateTimeField(db_index=True)")]),
    ("AuditLog", [("action", "models.CharField(max_length=50)"), ("at", "models.DateTimeField(auto_now_add=True, db_index=True)"),
                  ("data", "models.JSONField(default=dict)")]),
    ("Setting", [("key", "models.CharField(max_length=100, unique=True)"), ("value", "models.TextField(blank=True)")]),
]  # fmt: skip

#: Fields added later, one migration each: a realistic migration history.
EXTRA: list[tuple[str, str, str]] = [
    ("Account", "industry", "models.CharField(max_length=50, blank=True, default='')"),
    ("Contact", "title", "models.CharField(max_length=100, blank=True, default='')"),
    ("Deal", "probability", "models.PositiveSmallIntegerField(default=10)"),
    ("Ticket", "priority", "models.PositiveSmallIntegerField(default=3, db_index=True)"),
    ("Invoice", "due", "models.DateField(null=True)"),
    ("Product", "active", "models.BooleanField(default=True)"),
    ("Project", "archived", "models.BooleanField(default=False)"),
    ("Activity", "source", "models.CharField(max_length=30, blank=True, default='')"),
    ("Payment", "reference", "models.CharField(max_length=64, blank=True, default='')"),
]  # fmt: skip

#: The final stage: every field of EXTRA added (migration 0010).
FINAL_STAGE = len(EXTRA)
#: Environment variable that selects the stage of the models a process declares.
STAGE_ENV = "BENCH_CRM_STAGE"


def current_stage() -> int:
    """Return the stage this process declares (``BENCH_CRM_STAGE``, default the final one).

    The harness runs a library's processes at stage 8 to provision a fleet,
    then at stage 9 to apply the last AddField, as a deploy would.
    """
    stage = int(os.environ.get(STAGE_ENV, FINAL_STAGE))
    if not 0 <= stage <= FINAL_STAGE:
        raise ValueError(f"{STAGE_ENV} must be between 0 and {FINAL_STAGE}, not {stage}")
    return stage


def fields_at(stage: int) -> dict[str, list[tuple[str, str]]]:
    """Return each model's (field, declaration) pairs at ``stage``, in declaration order."""
    extra: dict[str, list[tuple[str, str]]] = {}
    for model, name, declaration in EXTRA[:stage]:
        extra.setdefault(model, []).append((name, declaration))
    return {model: fields + extra.get(model, []) for model, fields in MODELS}


def declare(namespace: dict[str, Any], base: type, stage: int | None = None) -> list[type]:
    """Define the 20 workload models on ``base`` in ``namespace`` (a models module's globals).

    The declarations are the constant strings above, evaluated with only
    ``models`` in scope, exactly as the reference generator would print them.
    """
    stage = current_stage() if stage is None else stage
    module = namespace["__name__"]
    declared = []
    for name, fields in fields_at(stage).items():
        attrs: dict[str, Any] = {"__module__": module, "__qualname__": name}
        for field_name, declaration in fields:
            attrs[field_name] = eval(declaration, {"models": models})  # constants of this module
        cls = type(base)(name, (base,), attrs)
        namespace[name] = cls
        declared.append(cls)
    return declared

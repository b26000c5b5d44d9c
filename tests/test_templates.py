"""Templates and their tenant classes: subclassing, managers, Meta, signals."""

import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.db import models

from tenancy.exceptions import TemplateModelUsed, TenancyError, TenantModelDefinitionError
from tenancy.models import TenantModel
from tests.testapp import receivers
from tests.testapp.models import ArchivedProject, Item, Project, Report, SpecialProject


def test_a_template_has_no_table_and_is_not_a_global_model():
    from django.apps import apps

    assert Project._meta.abstract
    assert "project" not in apps.all_models["testapp"]


def test_a_templates_manager_raises_a_clear_error():
    with pytest.raises(TemplateModelUsed, match=r"Project.for_tenant\(tenant\).objects"):
        Project.objects.all()


def test_a_template_without_declared_manager_raises_the_same_error():
    with pytest.raises(TemplateModelUsed, match="Report.objects"):
        Report.objects.count()


def test_template_errors_are_attribute_and_tenancy_errors():
    assert not hasattr(Project, "objects")
    with pytest.raises(TenancyError):
        Project.objects  # noqa: B018


def test_the_tenant_class_is_a_subclass_of_its_template(tenant):
    model = Project.for_tenant(tenant)
    assert issubclass(model, Project)
    assert model is not Project
    instance = model.objects.create(name="first")
    assert isinstance(instance, Project)
    assert instance.shout() == "FIRST"
    assert model.__mro__.index(Project) == 1


def test_the_tenant_class_keeps_the_templates_name_and_label(tenant):
    model = Project.for_tenant(tenant)
    assert model.__name__ == "Project"
    assert model._meta.label == "testapp.Project"


def test_does_not_exist_is_caught_by_the_templates_exception(tenant):
    model = Project.for_tenant(tenant)
    with pytest.raises(Project.DoesNotExist):
        model.objects.get(name="missing")
    assert issubclass(model.DoesNotExist, ObjectDoesNotExist)
    assert issubclass(model.MultipleObjectsReturned, Project.MultipleObjectsReturned)


def test_custom_managers_and_querysets_are_kept(tenant):
    model = Project.for_tenant(tenant)
    model.objects.create(name="a")
    assert model.objects.named("a").count() == 1


def test_meta_ordering_is_kept(tenant):
    model = Project.for_tenant(tenant)
    for name in ["c", "a", "b"]:
        model.objects.create(name=name)
    assert [p.name for p in model.objects.all()] == ["a", "b", "c"]


def test_meta_constraints_indexes_and_unique_together_are_kept_and_enforced(tenant):
    from django.db import IntegrityError, transaction

    item = Item.for_tenant(tenant)
    assert next(c.name for c in item._meta.constraints).endswith("item_position_gte_0")
    assert item._meta.indexes[0].fields == ["position"]
    assert item._meta.unique_together == (("project", "code"),)
    project = Project.for_tenant(tenant).objects.create(name="p")
    item.objects.create(project=project, code="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        item.objects.create(project=project, code="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        item.objects.create(project=project, code="y", position=-1)


def test_signal_receivers_of_the_template_fire_for_tenant_classes(tenant):
    receivers.calls.clear()
    model = Project.for_tenant(tenant)
    instance = model.objects.create(name="signalled")
    instance.delete()
    assert [kind for kind, _ in receivers.calls] == ["post_save", "pre_delete"]
    assert receivers.calls[0][1].name == "signalled"


def test_multi_table_inheritance_between_tenant_models(tenant):
    special = SpecialProject.for_tenant(tenant)
    parent = Project.for_tenant(tenant)
    obj = special.objects.create(name="big", budget=10)
    assert isinstance(obj, parent) and isinstance(obj, Project) and isinstance(obj, SpecialProject)
    assert parent.objects.get(pk=obj.pk).specialproject.budget == 10
    assert special._meta.get_field("project_ptr").remote_field.model is parent
    assert special.objects.filter(name="big", budget=10).exists()


def test_proxy_inheritance_between_tenant_models(tenant):
    proxy = ArchivedProject.for_tenant(tenant)
    parent = Project.for_tenant(tenant)
    parent.objects.create(name="old")
    obj = proxy.objects.get()
    assert proxy._meta.proxy and proxy._meta.db_table == parent._meta.db_table
    assert obj.shout() == "archived old"
    assert isinstance(obj, parent) and isinstance(obj, ArchivedProject)


def test_a_proxy_template_cannot_declare_fields():
    with pytest.raises(TenantModelDefinitionError, match="cannot add fields"):

        class BadProxy(Project):
            extra = models.IntegerField()

            class Meta:
                proxy = True
                app_label = "testapp"


def test_for_tenant_on_an_abstract_mixin_is_refused(tenant):
    class Mixin(TenantModel):
        class Meta:
            abstract = True
            app_label = "testapp"

    with pytest.raises(TenancyError, match="not a tenant model template"):
        Mixin.for_tenant(tenant)


def test_for_tenant_takes_a_tenant():
    with pytest.raises(TypeError, match="takes a tenant"):
        Project.for_tenant("acme")  # type: ignore[arg-type]


def test_the_tenant_model_has_an_accessor_for_each_template(tenant):
    """As in django-tenancy 0.3: ``tenant.projects`` is the default manager of the
    tenant's Project class (``TenantMeta.related_name``, default the name plus "s")."""
    created = tenant.projects.create(name="via the accessor")
    assert tenant.projects.model is Project.for_tenant(tenant)
    assert list(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == [
        "via the accessor"
    ]
    assert tenant.reports.model is Report.for_tenant(tenant)
    assert created.pk in tenant.projects.values_list("pk", flat=True)


def test_an_accessor_taken_by_an_attribute_of_the_tenant_model_is_a_warning(monkeypatch):
    from tenancy import checks

    monkeypatch.setattr(Project, "_tenancy_related_name", "name")  # Customer.name: a field
    [warning] = [w for w in checks.check_template_accessors() if w.id == "tenancy.W002"]
    assert "already has an attribute 'name'" in warning.msg
    monkeypatch.setattr(Project, "_tenancy_related_name", "projects+")  # none at all
    assert checks.check_template_accessors() == []

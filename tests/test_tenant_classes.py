"""Tenant classes behave as the model classes they are: they pickle (and so do their
querysets), subclassing one at run time makes no new template, their repr names their
tenant, and a row of another tenant is refused by name."""

from __future__ import annotations

import pickle

import pytest

import tenancy
from tenancy._classes.registry import TEMPLATES
from tenancy.exceptions import CrossTenantRelation, TenantDeleted
from tests.testapp.models import Item, Project, Report, Tag


def test_a_tenant_class_pickles_as_that_tenants_class(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    model = Project.for_tenant(acme)
    assert pickle.loads(pickle.dumps(model)) is model
    assert pickle.loads(pickle.dumps(Project.for_tenant(globex))) is Project.for_tenant(globex)
    assert pickle.loads(pickle.dumps(Project)) is Project  # the template: by reference


def test_a_tenant_class_unpickles_after_its_classes_were_evicted(make_tenant):
    acme = make_tenant("acme")
    data = pickle.dumps(Project.for_tenant(acme))
    tenancy.clear_cache()
    model = pickle.loads(data)
    assert model is Project.for_tenant(acme) and model._meta.db_table.startswith(
        ('"tenant_acme"', "tenant_acme__")
    )


def test_querysets_of_tenant_classes_pickle_with_their_filters_and_joins(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    first = Project.for_tenant(acme).objects.create(name="first")
    Report.for_tenant(acme).objects.create(project=first, content="acme's")
    Report.for_tenant(globex).objects.create(
        project=Project.for_tenant(globex).objects.create(name="first"), content="globex's"
    )
    item = Item.for_tenant(acme).objects.create(project=first, code="i")
    item.tags.add(Tag.for_tenant(acme).objects.create(label="red"))
    reports = Report.for_tenant(acme).objects.filter(project__name="first")
    items = Item.for_tenant(acme).objects.filter(tags__label="red")
    for queryset in (Project.for_tenant(acme).objects.filter(name="first"), reports, items):
        back = pickle.loads(pickle.dumps(queryset))
        assert back.model is queryset.model
        assert list(back) == list(queryset) and list(back)
        assert list(back.all()) == list(queryset)  # the query itself, run again
    assert [r.content for r in pickle.loads(pickle.dumps(reports)).all()] == ["acme's"]


def test_a_pickled_class_of_a_deleted_tenant_is_refused(make_tenant):
    acme = make_tenant("acme")
    data = pickle.dumps(Project.for_tenant(acme))
    acme.delete()
    with pytest.raises(TenantDeleted):
        pickle.loads(data)


def test_subclassing_a_tenant_class_at_run_time_makes_no_template(make_tenant):
    acme = make_tenant("acme")
    before = dict(TEMPLATES)
    base = Project.for_tenant(acme)
    sub = type("LoudProject", (base,), {"Meta": type("Meta", (), {"proxy": True})})
    assert dict(TEMPLATES) == before
    assert issubclass(sub, Project) and sub._meta.apps is base._meta.apps
    assert sub.objects.count() == 0  # a proxy: the tenant's own table


def test_a_tenant_classs_repr_names_its_tenant(make_tenant):
    acme = make_tenant("acme")
    assert repr(Project.for_tenant(acme)) == f"<class '{acme.db_schema}.Project'>"
    assert repr(Project) == "<class 'tests.testapp.models.Project'>"


def test_a_row_of_another_tenant_is_refused_by_name(make_tenant):
    acme, globex = make_tenant("acme"), make_tenant("globex")
    theirs = Project.for_tenant(globex).objects.create(name="theirs")
    report = Report.for_tenant(acme)(content="x")
    with pytest.raises(CrossTenantRelation, match=f"row of tenant {globex.db_schema}") as raised:
        report.project = theirs
    assert isinstance(raised.value, ValueError)  # what Django raises for a wrong row
    assert f"belongs to tenant {acme.db_schema}" in str(raised.value)
    with pytest.raises(ValueError, match='must be a "Project" instance'):
        report.project = Tag.for_tenant(acme)(label="not a project")  # Django's own error

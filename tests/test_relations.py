"""Relations of tenant models: to the same tenant, to shared models, and refused ones."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from tenancy._classes.validation import check_shared_relations, check_template_relations
from tests.testapp.models import (
    Category,
    Item,
    Membership,
    Person,
    Product,
    Project,
    Report,
    Tag,
    Team,
)


def test_a_foreign_key_points_to_the_same_tenants_class(tenant):
    report = Report.for_tenant(tenant)
    assert report._meta.get_field("project").remote_field.model is Project.for_tenant(tenant)


def test_foreign_keys_join_within_the_tenant(tenant):
    project = Project.for_tenant(tenant).objects.create(name="first")
    Report.for_tenant(tenant).objects.create(project=project, content="hello")
    assert Report.for_tenant(tenant).objects.filter(project__name="first").count() == 1
    assert list(project.reports.values_list("content", flat=True)) == ["hello"]


def test_reverse_relations_work_whichever_class_is_built_first(tenant):
    # The original django-tenancy's issue #39: this failed until Product had been built.
    category = Category.for_tenant(tenant)
    category.objects.create(name="empty")
    assert category.objects.filter(products__isnull=True).count() == 1
    assert Product.for_tenant(tenant)._meta.get_field("category").remote_field.model is category


def test_one_to_one_to_self(tenant):
    person = Person.for_tenant(tenant)
    alice = person.objects.create(name="alice")
    bob = person.objects.create(name="bob", best_friend=alice)
    assert person.objects.get(pk=alice.pk).befriended_by == bob


def test_many_to_many_with_an_auto_created_table(tenant):
    item_model, tag_model = Item.for_tenant(tenant), Tag.for_tenant(tenant)
    project = Project.for_tenant(tenant).objects.create(name="p")
    item = item_model.objects.create(project=project, code="a")
    tag = tag_model.objects.create(label="red")
    item.tags.add(tag)
    assert list(tag.items.all()) == [item]
    through = item_model._meta.get_field("tags").remote_field.through
    assert through._meta.auto_created
    assert tenant.db_schema in through._meta.db_table


def test_many_to_many_through_a_tenant_model(tenant):
    team = Team.for_tenant(tenant).objects.create(name="core")
    person = Person.for_tenant(tenant).objects.create(name="ann")
    Membership.for_tenant(tenant).objects.create(team=team, person=person, role="lead")
    assert list(team.people.all()) == [person]
    assert Team.for_tenant(tenant)._meta.get_field("people").remote_field.through is (
        Membership.for_tenant(tenant)
    )


def test_foreign_key_and_many_to_many_to_shared_models(tenant):
    user = User.objects.create(username="u1")
    project = Project.for_tenant(tenant).objects.create(name="p", owner=user, sponsor=user)
    project.watchers.add(user)
    project.refresh_from_db()
    assert project.owner == user and list(project.watchers.all()) == [user]


def test_a_class_related_name_gives_each_tenant_its_own_accessor(make_tenant):
    one, two = make_tenant("one"), make_tenant("two")
    user = User.objects.create(username="sponsor")
    Project.for_tenant(one).objects.create(name="p1", sponsor=user)
    Project.for_tenant(two).objects.create(name="p2", sponsor=user)
    assert [p.name for p in user.tenant_one_project_sponsored.all()] == ["p1"]
    assert [p.name for p in user.tenant_two_project_sponsored.all()] == ["p2"]


def test_deleting_a_shared_row_cascades_into_every_tenant(make_tenant):
    one, two = make_tenant("one"), make_tenant("two")
    user = User.objects.create(username="gone")
    keep = User.objects.create(username="kept")
    for tenant in (one, two):
        Project.for_tenant(tenant).objects.create(name="owned", owner=user)
        Project.for_tenant(tenant).objects.create(name="sponsored", sponsor=user)
        Project.for_tenant(tenant).objects.create(name="other", sponsor=keep)
    user.delete()
    for tenant in (one, two):
        model = Project.for_tenant(tenant)
        assert sorted(model.objects.values_list("name", flat=True)) == ["other", "owned"]
        assert model.objects.get(name="owned").owner is None  # SET_NULL


def test_a_colliding_related_name_to_a_shared_model_is_refused():
    class Bad(Project.__base__):  # TenantModel
        user = models.ForeignKey(User, models.CASCADE, related_name="bad_things")

        class Meta:
            app_label = "testapp"

    try:
        with pytest.raises(ImproperlyConfigured, match=r"related_name='\+'.*%\(class\)s"):
            check_template_relations([Bad])
    finally:
        _forget(Bad)


def test_a_default_related_name_to_a_shared_model_is_refused():
    class Implicit(Project.__base__):
        user = models.ForeignKey(User, models.CASCADE)

        class Meta:
            app_label = "testapp"

    try:
        with pytest.raises(ImproperlyConfigured, match="related_name=None"):
            check_template_relations([Implicit])
    finally:
        _forget(Implicit)


def test_a_shared_model_pointing_to_a_tenant_model_is_refused():
    from django.test.utils import isolate_apps

    with isolate_apps("tests.testapp"):

        class Shared(models.Model):
            project = models.ForeignKey("testapp.Project", models.CASCADE)

            class Meta:
                app_label = "testapp"

        with pytest.raises(ImproperlyConfigured, match="from a shared model to the tenant model"):
            check_shared_relations([Shared])


def test_the_installed_models_pass_the_relation_checks():
    from django.apps import apps

    from tenancy._classes.registry import TEMPLATES

    check_template_relations(TEMPLATES.values())
    check_shared_relations(apps.get_models(include_auto_created=True))


def _forget(template):
    from tenancy._classes.registry import TEMPLATES

    TEMPLATES.pop(template._meta.label_lower, None)

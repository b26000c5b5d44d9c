"""The README's example, as a user would write it."""

import pickle

from tests.testapp.models import Customer, Project, Report


def test_the_readme_example_runs(transactional_db, settings):
    settings.TENANCY_EAGER = True
    customer = Customer.objects.create(name="example")
    try:
        customer.wait_until_ready(timeout=30)
        TenantProject = Project.for_tenant(customer)
        project = TenantProject.objects.create(name="first")
        Report.for_tenant(customer).objects.create(project=project, content="hello")
        reports = Report.for_tenant(customer).objects.filter(project__name="first")
        assert [r.content for r in reports] == ["hello"]
    finally:
        customer.delete()


def test_tenant_instances_pickle_with_their_tenants_class(tenant):
    import tenancy

    project = Project.for_tenant(tenant).objects.create(name="pickled")
    data = pickle.dumps(project)
    restored = pickle.loads(data)
    assert type(restored) is Project.for_tenant(tenant)
    assert restored.name == "pickled" and restored.pk == project.pk
    tenancy.clear_cache()
    again = pickle.loads(data)
    assert type(again) is Project.for_tenant(tenant)
    assert again == Project.for_tenant(tenant).objects.get()

def test_smoke(tenant):
    from tests.testapp.models import Project, Report
    P = Project.for_tenant(tenant)
    p = P.objects.create(name="first")
    Report.for_tenant(tenant).objects.create(project=p, content="x")
    assert Report.for_tenant(tenant).objects.filter(project__name="first").count() == 1

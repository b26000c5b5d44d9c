"""tenancy.files: each tenant's files under its own prefix of a storage, on the file system."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages
from django.db import models
from django.db.models.fields.files import FieldFile

from tenancy.exceptions import TenancyError
from tenancy.files import TenantStorage, remove_dropped_tenant_files, tenant_prefix, upload_to
from tests.testapp.models import Customer, Project

TRAVERSALS = ["../x", "a/../../x", "a/..", "..", "/etc/passwd", "..\\x", "a\\..\\..\\x", "C:x"]


@pytest.fixture
def media(settings, tmp_path):
    """The default storage: a FileSystemStorage in a temporary directory."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path), "base_url": "/media/"},
        },
    }
    return tmp_path


def fake_tenant(name: str = "h15files", incarnation: str | None = None) -> Customer:
    """A tenant instance as read from its row (its storage needs no database)."""
    return Customer(
        name=name, db_schema=f"tenant_{name}", incarnation=incarnation or uuid.uuid4().hex
    )


def test_a_tenant_storage_keeps_names_relative_to_the_tenants_prefix(media):
    tenant = fake_tenant()
    storage = TenantStorage(tenant)
    name = storage.save("reports/2025.csv", ContentFile(b"a,b\n"))
    assert name == "reports/2025.csv"
    on_disk = media / "tenants" / tenant.db_schema / tenant.incarnation / "reports" / "2025.csv"
    assert on_disk.read_bytes() == b"a,b\n"
    assert tenant_prefix(tenant) == f"tenants/{tenant.db_schema}/{tenant.incarnation}"
    assert storage.exists(name) and storage.size(name) == 4
    assert storage.open(name).read() == b"a,b\n"
    assert storage.listdir("") == (["reports"], [])
    assert storage.listdir("reports") == ([], ["2025.csv"])
    assert storage.url(name) == f"/media/{tenant_prefix(tenant)}/reports/2025.csv"
    assert storage.path(name) == str(on_disk)
    assert isinstance(storage.get_modified_time(name), datetime)
    # A taken name gets an alternative, still relative and inside the prefix.
    second = storage.save("reports/2025.csv", ContentFile(b"again"))
    assert second != name and second.startswith("reports/2025")
    storage.delete(name)
    assert not storage.exists(name) and not on_disk.exists()


def test_a_tenant_storage_wraps_a_storage_given_by_instance_or_alias(media, tmp_path):
    other = FileSystemStorage(location=str(tmp_path / "elsewhere"))
    tenant = fake_tenant()
    TenantStorage(tenant, base=other).save("a.txt", ContentFile(b"x"))
    assert (tmp_path / "elsewhere" / tenant_prefix(tenant) / "a.txt").exists()
    assert TenantStorage(tenant, base="default").base is storages["default"]


def test_two_tenants_files_of_the_same_name_never_meet(media):
    acme, globex = TenantStorage(fake_tenant("h15filea")), TenantStorage(fake_tenant("h15fileb"))
    acme.save("logo.png", ContentFile(b"acme"))
    assert not globex.exists("logo.png")
    globex.save("logo.png", ContentFile(b"globex"))
    assert acme.open("logo.png").read() == b"acme"


def test_a_tenant_signed_up_again_under_the_same_name_starts_without_the_old_files(media):
    TenantStorage(fake_tenant("h15fileagain")).save("logo.png", ContentFile(b"old"))
    again = TenantStorage(fake_tenant("h15fileagain"))  # same schema name, new incarnation
    assert not again.exists("logo.png")
    assert again.listdir("") == ([], [])


@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_name_that_would_leave_the_tenants_prefix_is_refused(media, name):
    victim = TenantStorage(fake_tenant("h15victim"))
    victim.save("secret.txt", ContentFile(b"secret"))
    storage = TenantStorage(fake_tenant("h15attacker"))
    for attempt in (
        lambda: storage.save(name, ContentFile(b"x")),
        lambda: storage.open(name),
        lambda: storage.exists(name),
        lambda: storage.delete(name),
        lambda: storage.listdir(name),
        lambda: storage.url(name),
    ):
        with pytest.raises(SuspiciousFileOperation, match="path traversal"):
            attempt()
    assert victim.exists("secret.txt")
    assert sorted(p.name for p in media.rglob("*") if p.is_file()) == ["secret.txt"]


def _file_field(directory: str = "docs/%Y/") -> models.FileField:
    field = models.FileField(upload_to=upload_to(directory))
    field.set_attributes_from_name("attachment")
    return field


def test_upload_to_puts_a_tenant_class_upload_under_its_tenants_prefix(media, make_tenant):
    tenant = make_tenant("h15upload")
    field = _file_field()
    project = Project.for_tenant(tenant)(name="p")
    attachment = FieldFile(project, field, None)
    attachment.save("plan.txt", ContentFile(b"plan"), save=False)
    year = datetime.now().strftime("%Y")
    assert attachment.name == f"{tenant_prefix(tenant)}/docs/{year}/plan.txt"
    assert (media / attachment.name).read_bytes() == b"plan"
    # The tenant's storage finds the same file by its relative name.
    assert TenantStorage(tenant).open(f"docs/{year}/plan.txt").read() == b"plan"
    # Evicted from this process's cache meanwhile: the prefix is the same.
    import tenancy

    tenancy.clear_cache()
    assert upload_to()(project, "b.txt") == f"{tenant_prefix(tenant)}/b.txt"


@pytest.mark.parametrize("filename", ["../../x.txt", "/etc/passwd", "..\\x.txt"])
def test_upload_to_refuses_a_file_name_that_would_leave_the_prefix(media, make_tenant, filename):
    tenant = make_tenant("h15uploadbad")
    project = Project.for_tenant(tenant)(name="p")
    with pytest.raises(SuspiciousFileOperation):
        upload_to("docs/")(project, filename)
    with pytest.raises(SuspiciousFileOperation):
        upload_to("../other")(project, "x.txt")


def test_upload_to_refuses_an_instance_of_a_shared_model_and_serialises_for_migrations():
    with pytest.raises(TenancyError, match="Customer is no tenant's class"):
        upload_to()(Customer(name="h15shared"), "x.txt")
    assert upload_to("invoices/").deconstruct() == ("tenancy.files.upload_to", ("invoices/",), {})
    assert upload_to("a") == upload_to("a") != upload_to("b")


def test_dropping_a_tenant_removes_its_files_only(media, make_tenant):
    gone, kept = make_tenant("h15filegone"), make_tenant("h15filekept")
    TenantStorage(gone).save("a/b/c.txt", ContentFile(b"gone"))
    TenantStorage(gone).save("top.txt", ContentFile(b"gone"))
    TenantStorage(kept).save("a/b/c.txt", ContentFile(b"kept"))
    storages["default"].save("shared.txt", ContentFile(b"the project's"))
    gone_dir = media / tenant_prefix(gone)
    gone.delete()  # eager lifecycle: the drop runs inline, then tenant_dropped
    assert not gone_dir.exists()
    assert not gone_dir.parent.exists()  # tenants/<schema>, empty, is gone too
    assert TenantStorage(kept).open("a/b/c.txt").read() == b"kept"
    assert (media / "shared.txt").exists()


def test_dropping_a_tenant_never_follows_a_symbolic_link_out_of_its_directory(
    media, make_tenant, tmp_path_factory
):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "precious.txt").write_text("not the tenant's")
    gone = make_tenant("h15filelink")
    TenantStorage(gone).save("a.txt", ContentFile(b"gone"))
    (media / tenant_prefix(gone) / "linked").symlink_to(outside, target_is_directory=True)
    gone.delete()
    assert (outside / "precious.txt").read_text() == "not the tenant's"
    assert not (media / tenant_prefix(gone)).exists()


def test_an_empty_tenancy_file_storages_keeps_a_dropped_tenants_files(media, make_tenant, settings):
    settings.TENANCY_FILE_STORAGES = []
    gone = make_tenant("h15filekeep")
    TenantStorage(gone).save("a.txt", ContentFile(b"kept"))
    path = media / tenant_prefix(gone) / "a.txt"
    gone.delete()
    assert path.read_bytes() == b"kept"


def test_the_drop_of_a_moved_tenants_source_copy_keeps_its_files(media, make_tenant):
    moved = make_tenant("h15filemoved")
    TenantStorage(moved).save("a.txt", ContentFile(b"still mine"))
    # A move drops the source schema through a tombstone of the same incarnation.
    remove_dropped_tenant_files(
        Customer, schema=moved.db_schema, database="default", incarnation=moved.incarnation
    )
    assert TenantStorage(moved).exists("a.txt")

"""Tenant-scoped users (tenancy.auth) through Django's test client, with real tenants.

The test client keeps one cookie jar for every host: a session cookie got on
one tenant's host is presented on every other host, as a browser does with a
cookie set for the whole base domain (or as an attacker would).
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import SESSION_KEY as DJANGO_SESSION_KEY
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.utils.module_loading import import_string

from tenancy import auth
from tenancy._primitives import storage
from tenancy.auth import (
    AbstractTenantUser,
    AnonymousTenantUser,
    TenantAuthenticationMiddleware,
    TenantUserBackend,
)
from tenancy.exceptions import TemplateModelUsed
from tests.authapp.models import Member
from tests.testapp.models import Customer

PASSWORD = "correct horse battery staple"

AUTH_ROUTING = {
    "ROOT_URLCONF": "tests.authapp.urls",
    "MIDDLEWARE": [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "tenancy.middleware.TenantMiddleware",
        "tenancy.auth.TenantAuthenticationMiddleware",
    ],
    "ALLOWED_HOSTS": ["*"],
    "TENANCY_TENANT_RESOLVER": "subdomain",
    "TENANCY_BASE_DOMAIN": "example.com",
    "LOGIN_REDIRECT_URL": "/me/",
    "TENANCY_LOGIN_URL": "/login/",
}


@pytest.fixture(autouse=True)
def _routing():
    with override_settings(**AUTH_ROUTING):
        yield


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def acme(make_tenant):
    return make_tenant("acme")


@pytest.fixture
def globex(make_tenant):
    return make_tenant("globex")


@pytest.fixture
def alice(acme):
    return Member.for_tenant(acme).objects.create_user("alice", "alice@acme.test", PASSWORD)


def host(tenant) -> str:
    return f"{tenant.name}.example.com"


def log_in(client, tenant, username="alice", password=PASSWORD, **extra):
    data = {"username": username, "password": password, **extra}
    return client.post("/login/", data, HTTP_HOST=host(tenant))


def me(client, where) -> str:
    hostname = where if isinstance(where, str) else host(where)
    return client.get("/me/", HTTP_HOST=hostname).content.decode()


def twin(user, tenant):
    """A user of ``tenant`` with the same primary key, username and password hash as
    ``user``: its session auth hash is the same, so only the tenant binding tells them
    apart."""
    model = Member.for_tenant(tenant)
    model.objects.filter(pk=user.pk).delete()
    copy = model(pk=user.pk, username=user.username, password=user.password)
    copy.save()
    assert copy.get_session_auth_hash() == user.get_session_auth_hash()
    return copy


# Logging in on a tenant's host.


def test_a_tenant_user_logs_in_on_its_tenant_host_and_stays_logged_in(client, acme, alice):
    response = log_in(client, acme)
    assert response.status_code == 302 and response["Location"] == "/me/"
    assert me(client, acme) == "tenant_user=alice user=AnonymousUser"
    session = client.session
    assert session[auth.SESSION_KEY] == str(alice.pk)
    assert session[auth.TENANT_SESSION_KEY] == acme.incarnation
    assert session[auth.BACKEND_SESSION_KEY] == "tenancy.auth.TenantUserBackend"
    assert DJANGO_SESSION_KEY not in session  # request.user is left to the shared users
    alice.refresh_from_db()
    assert alice.last_login is not None  # Django's user_logged_in receiver


def test_the_login_page_renders_for_the_tenant(client, acme):
    response = client.get("/login/", HTTP_HOST=host(acme))
    assert response.status_code == 200
    assert b"Log in to acme" in response.content and b'name="username"' in response.content


def test_a_session_of_tenant_a_authenticates_nobody_on_tenant_b(client, acme, globex, alice):
    twin(alice, globex)  # same pk, username and password hash on globex
    log_in(client, acme)
    assert me(client, globex) == "tenant_user=AnonymousTenantUser user=AnonymousUser"
    assert client.get("/private/", HTTP_HOST=host(globex)).status_code == 302
    # The session still belongs to acme: going back there, alice is still logged in.
    assert me(client, acme).startswith("tenant_user=alice ")


def test_the_same_credentials_on_another_tenant_do_not_log_in(client, acme, globex, alice):
    response = log_in(client, globex)
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert auth.SESSION_KEY not in client.session


def test_a_host_without_a_tenant_has_no_tenant_user(client, acme, alice):
    log_in(client, acme)
    assert me(client, "example.com") == "tenant_user=AnonymousTenantUser user=AnonymousUser"


def test_there_is_no_tenant_login_on_a_host_without_a_tenant(client, acme, alice):
    assert client.get("/login/", HTTP_HOST="example.com").status_code == 404
    assert client.post("/login/", {"username": "alice"}, HTTP_HOST="example.com").status_code == 404


def test_a_wrong_password_is_refused_and_reported(client, acme, alice):
    failures = []

    def receiver(sender, credentials, request, **kwargs):
        failures.append((sender, credentials))

    user_login_failed.connect(receiver)
    try:
        response = log_in(client, acme, password="wrong")
    finally:
        user_login_failed.disconnect(receiver)
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert auth.SESSION_KEY not in client.session
    assert me(client, acme).startswith("tenant_user=AnonymousTenantUser")
    # The sender is the public package, as Django's is "django.contrib.auth".
    assert failures == [("tenancy.auth", {"username": "alice", "password": "********************"})]


def test_an_unknown_username_is_refused(client, acme, alice):
    assert log_in(client, acme, username="mallory").status_code == 200
    assert auth.SESSION_KEY not in client.session


def test_an_inactive_user_cannot_log_in(client, acme, alice):
    alice.is_active = False
    alice.save()
    assert log_in(client, acme).status_code == 200
    assert auth.SESSION_KEY not in client.session


def test_a_user_deactivated_while_logged_in_is_logged_out(client, acme, alice):
    log_in(client, acme)
    type(alice).objects.filter(pk=alice.pk).update(is_active=False)
    assert me(client, acme).startswith("tenant_user=AnonymousTenantUser")
    assert auth.SESSION_KEY not in client.session  # forgotten, not just ignored
    type(alice).objects.filter(pk=alice.pk).update(is_active=True)
    assert me(client, acme).startswith("tenant_user=AnonymousTenantUser")


def test_a_deleted_user_is_logged_out(client, acme, alice):
    log_in(client, acme)
    alice.delete()
    assert me(client, acme).startswith("tenant_user=AnonymousTenantUser")
    assert auth.SESSION_KEY not in client.session


def test_logging_in_rotates_the_session_key(client, acme, alice):
    client.get("/login/", HTTP_HOST=host(acme))
    session = client.session
    session["cart"] = "kept"
    session.save()
    before = session.session_key
    log_in(client, acme)
    assert client.session.session_key != before
    assert client.session["cart"] == "kept"  # as Django: anonymous data is kept


def test_logging_in_as_another_user_starts_an_empty_session(client, acme, alice):
    Member.for_tenant(acme).objects.create_user("bob", password=PASSWORD)
    log_in(client, acme)
    session = client.session
    session["alice's"] = "secret"
    session.save()
    log_in(client, acme, username="bob")
    assert me(client, acme).startswith("tenant_user=bob ")
    assert "alice's" not in client.session


# Password changes, logout.


def test_a_password_change_logs_out_every_other_session(acme, alice):
    here, elsewhere = Client(), Client()
    log_in(here, acme)
    log_in(elsewhere, acme)
    response = here.post("/password/", {"password": "a new one"}, HTTP_HOST=host(acme))
    assert response.content == b"changed"
    assert me(here, acme).startswith("tenant_user=alice ")  # update_session_auth_hash()
    assert me(elsewhere, acme).startswith("tenant_user=AnonymousTenantUser")
    assert auth.SESSION_KEY not in elsewhere.session
    assert log_in(elsewhere, acme, password="a new one").status_code == 302


def test_a_password_set_elsewhere_invalidates_the_session(client, acme, alice):
    log_in(client, acme)
    alice.set_password("reset by support")
    alice.save()
    assert me(client, acme).startswith("tenant_user=AnonymousTenantUser")


def test_a_secret_key_fallback_still_verifies_the_session_and_is_replaced(client, acme, alice):
    log_in(client, acme)
    with override_settings(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=["tests-only"]):
        assert me(client, acme).startswith("tenant_user=alice ")
        assert client.session[auth.HASH_SESSION_KEY] == alice.get_session_auth_hash()


def test_logout_flushes_the_session(client, acme, alice):
    log_in(client, acme)
    response = client.post("/logout/", HTTP_HOST=host(acme))
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert me(client, acme).startswith("tenant_user=AnonymousTenantUser")
    assert auth.SESSION_KEY not in client.session


def test_logout_needs_a_post(client, acme, alice):
    log_in(client, acme)
    assert client.get("/logout/", HTTP_HOST=host(acme)).status_code == 405
    assert me(client, acme).startswith("tenant_user=alice ")


# A tenant deleted and signed up again.


def test_a_tenant_signed_up_again_rejects_the_sessions_of_its_former_incarnation(
    client, make_tenant
):
    old = make_tenant("acme")
    alice = Member.for_tenant(old).objects.create_user("alice", password=PASSWORD)
    log_in(client, old)
    assert me(client, "acme.example.com").startswith("tenant_user=alice ")
    old.delete()
    new = make_tenant("acme")
    assert new.incarnation != old.incarnation and new.db_schema != old.db_schema
    twin(alice, new)  # the same id, username and password hash in the new tenant
    assert me(client, "acme.example.com").startswith("tenant_user=AnonymousTenantUser")
    assert log_in(client, new).status_code == 302  # a fresh login works
    assert me(client, "acme.example.com").startswith("tenant_user=alice ")


# The redirects of views that need a tenant user.


def test_a_view_that_needs_a_tenant_user_redirects_to_the_tenant_login(client, acme, alice):
    for path in ("/private/", "/private-view/"):
        response = client.get(path + "?x=1", HTTP_HOST=host(acme))
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={path}%3Fx%3D1"
    log_in(client, acme, next="/private/")
    assert client.get("/private/", HTTP_HOST=host(acme)).content == b"private to alice"
    assert client.get("/private-view/", HTTP_HOST=host(acme)).content == (b"private view of alice")


def test_login_redirects_to_a_safe_next_only(client, acme, alice):
    assert log_in(client, acme, next="/private/")["Location"] == "/private/"
    assert log_in(client, acme, next="https://evil.test/")["Location"] == "/me/"


def test_redirect_authenticated_user_skips_the_login_page(acme, alice):
    view = auth.TenantLoginView.as_view(redirect_authenticated_user=True)
    request = RequestFactory().get("/login/", HTTP_HOST=host(acme))
    request.tenant = acme
    request.tenant_user = Member.for_tenant(acme).objects.get()
    response = view(request)
    assert response.status_code == 302 and response["Location"] == "/me/"


# Shared staff users and the admin, alongside.


@pytest.fixture
def staff(transactional_db):
    return get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)


def admin_login(client, username="staff", password=PASSWORD):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        HTTP_HOST="example.com",
    )


def test_staff_and_a_tenant_user_stay_logged_in_in_one_session(client, staff, acme, alice):
    assert admin_login(client)["Location"] == "/admin/"
    log_in(client, acme)
    assert me(client, acme) == "tenant_user=alice user=staff"
    assert client.get("/admin/", HTTP_HOST="example.com").status_code == 200
    # Logging the tenant user out keeps the staff user logged in.
    client.post("/logout/", HTTP_HOST=host(acme))
    assert me(client, acme) == "tenant_user=AnonymousTenantUser user=staff"
    assert client.get("/admin/", HTTP_HOST="example.com").status_code == 200


def test_a_staff_login_keeps_the_tenant_user_logged_in(client, staff, acme, alice):
    log_in(client, acme)
    admin_login(client)
    assert me(client, acme) == "tenant_user=alice user=staff"


def test_a_tenant_user_cannot_log_in_to_the_admin(client, acme, alice):
    response = admin_login(client, "alice")
    assert response.status_code == 200 and DJANGO_SESSION_KEY not in client.session
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "alice", "password": PASSWORD},
        HTTP_HOST=host(acme),
    )
    assert response.status_code == 200 and DJANGO_SESSION_KEY not in client.session


def test_staff_credentials_do_not_log_in_on_a_tenant(client, staff, acme):
    assert log_in(client, acme, username="staff").status_code == 200
    assert auth.SESSION_KEY not in client.session


def test_django_s_session_machinery_never_restores_a_tenant_user(staff, acme, alice):
    assert TenantUserBackend().get_user(alice.pk) is None
    assert TenantUserBackend().get_user(staff.pk) is None


# The functions, directly.


def request_for(tenant, session=None):
    request = RequestFactory().get("/", HTTP_HOST=host(tenant) if tenant else "example.com")
    request.tenant = tenant
    request.session = session if session is not None else Client().session
    return request


def test_login_refuses_a_user_of_another_tenant(acme, globex, alice):
    with pytest.raises(ValueError, match="is not a user of the request's tenant globex"):
        auth.login(request_for(globex), alice)
    with pytest.raises(ValueError, match="needs a request for a tenant"):
        auth.login(request_for(None), alice)


def test_login_refuses_a_shared_user(staff, acme):
    with pytest.raises(ValueError, match="is not a user of the request's tenant"):
        auth.login(request_for(acme), staff)


def test_authenticate_returns_the_request_tenant_s_user_with_its_backend(acme, globex, alice):
    user = auth.authenticate(request_for(acme), username="alice", password=PASSWORD)
    assert user == alice and user.backend == "tenancy.auth.TenantUserBackend"
    assert auth.authenticate(request_for(globex), username="alice", password=PASSWORD) is None
    assert auth.authenticate(request_for(None), username="alice", password=PASSWORD) is None
    assert auth.authenticate(request_for(acme), token="unknown to the backend") is None


def test_login_sends_user_logged_in_with_the_tenant_s_class(acme, alice):
    sent = []

    def receiver(sender, request, user, **kwargs):
        sent.append((sender, user))

    user_logged_in.connect(receiver)
    try:
        auth.login(request_for(acme), alice)
    finally:
        user_logged_in.disconnect(receiver)
    assert sent == [(Member.for_tenant(acme), alice)]


def test_a_session_of_a_backend_no_longer_listed_authenticates_nobody(acme, alice):
    request = request_for(acme)
    auth.login(request, alice, backend="tenancy.auth.TenantUserBackend")
    restored = request_for(acme, request.session)
    assert auth.get_user(restored) == alice
    with override_settings(TENANCY_AUTHENTICATION_BACKENDS=["tests.test_auth.GrantingBackend"]):
        assert isinstance(auth.get_user(request_for(acme, request.session)), AnonymousTenantUser)


def test_login_needs_the_backend_when_several_are_configured(acme, alice):
    backends = ["tenancy.auth.TenantUserBackend", "tests.test_auth.GrantingBackend"]
    with override_settings(TENANCY_AUTHENTICATION_BACKENDS=backends):
        with pytest.raises(ValueError, match="pass login\\(\\) the `backend` argument"):
            auth.login(request_for(acme), Member.for_tenant(acme).objects.get())
        with pytest.raises(ValueError, match="is not one of TENANCY_AUTHENTICATION_BACKENDS"):
            auth.login(
                request_for(acme), alice, backend="django.contrib.auth.backends.ModelBackend"
            )


def test_the_middleware_needs_the_session_and_the_tenant(acme):
    middleware = TenantAuthenticationMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/")
    with pytest.raises(ImproperlyConfigured, match="SessionMiddleware"):
        middleware(request)
    request.session = Client().session
    with pytest.raises(ImproperlyConfigured, match="TenantMiddleware"):
        middleware(request)


def test_the_template_setting_is_checked(acme):
    assert auth.get_tenant_user_template() is Member
    assert auth.get_tenant_user_model(acme) is Member.for_tenant(acme)
    refusals = [
        (None, "TENANCY_USER_MODEL is not set"),
        ("testapp.Customer", "not a tenant model template"),
        ("testapp.Project", "does not derive from"),
        ("member", "'app_label.ModelName'"),
    ]
    for label, message in refusals:
        with (
            override_settings(TENANCY_USER_MODEL=label),
            pytest.raises(ImproperlyConfigured, match=message),
        ):
            auth.get_tenant_user_template()


# The user model and its permissions.


class GrantingBackend(TenantUserBackend):
    """Gives every tenant user the permission to view projects."""

    def get_user_permissions(self, user_obj, obj=None):
        return {"testapp.view_project"}


def test_the_tenant_user_template_is_a_template_with_django_s_user_api(acme, alice):
    assert issubclass(Member.for_tenant(acme), Member)
    assert isinstance(alice, AbstractTenantUser)
    assert alice.check_password(PASSWORD) and not alice.check_password("wrong")
    assert alice.is_authenticated and not alice.is_anonymous and not alice.is_staff
    assert str(alice) == "alice" and alice.natural_key() == ("alice",)
    assert acme.members.get() == alice  # the accessor of the template on the tenant model
    with pytest.raises(TemplateModelUsed, match="for_tenant"):
        Member.objects.all()
    user = Member.for_tenant(acme).objects.create_user("nopass", email="Bob@EXAMPLE.test")
    assert not user.has_usable_password() and user.email == "Bob@example.test"


def test_usernames_are_unique_per_tenant_only(acme, globex, alice):
    Member.for_tenant(globex).objects.create_user("alice", password="another")
    assert Member.for_tenant(globex).objects.get().username == "alice"


def test_a_tenant_superuser_has_every_permission_in_its_tenant(acme, alice):
    root = Member.for_tenant(acme).objects.create_superuser("root", password=PASSWORD)
    assert root.has_perm("testapp.delete_project") and root.has_module_perms("testapp")
    assert root.has_perms(["a.b", "c.d"])
    assert not alice.has_perm("testapp.delete_project") and not alice.has_module_perms("testapp")
    root.is_active = False
    assert not root.has_perm("testapp.delete_project")
    with pytest.raises(ValueError, match="must have is_superuser=True"):
        Member.for_tenant(acme).objects.create_superuser("x", is_superuser=False)


def test_permissions_come_from_the_tenant_backends(acme, alice, staff):
    with override_settings(TENANCY_AUTHENTICATION_BACKENDS=["tests.test_auth.GrantingBackend"]):
        assert alice.has_perm("testapp.view_project")
        assert alice.get_all_permissions() == {"testapp.view_project"}
        assert alice.has_module_perms("testapp") and not alice.has_module_perms("authapp")
        assert not alice.has_perm("testapp.delete_project")
        assert not AnonymousTenantUser().has_perm("testapp.view_project")
        assert not GrantingBackend().has_perm(staff, "testapp.view_project")  # a shared user
    assert not alice.has_perm("testapp.view_project")  # the default backend gives none


def test_the_anonymous_tenant_user(acme):
    anonymous = AnonymousTenantUser()
    assert not anonymous.is_authenticated and anonymous.is_anonymous and anonymous.pk is None
    assert anonymous == AnonymousTenantUser() and str(anonymous) == "AnonymousTenantUser"
    with pytest.raises(NotImplementedError):
        anonymous.save()


# createtenantsuperuser


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command("createtenantsuperuser", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_createtenantsuperuser_creates_a_superuser_in_the_tenant(monkeypatch, client, acme):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    output = run("--tenant", "acme", "--username", "root", "--email", "root@acme.test", "--noinput")
    assert "Superuser 'root' created in tenant acme (schema tenant_acme)" in output
    root = Member.for_tenant(acme).objects.get(username="root")
    assert root.is_superuser and root.email == "root@acme.test" and root.check_password(PASSWORD)
    assert not get_user_model().objects.filter(username="root").exists()  # not a shared user
    assert log_in(client, acme, username="root").status_code == 302


def test_createtenantsuperuser_takes_the_values_from_the_environment(monkeypatch, acme):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "envroot")
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    run("--tenant", acme.db_schema, "--noinput")
    root = Member.for_tenant(acme).objects.get()
    assert root.username == "envroot" and root.email == ""
    assert not root.has_usable_password()  # no DJANGO_SUPERUSER_PASSWORD, as createsuperuser


def test_createtenantsuperuser_finds_the_tenant_by_primary_key(monkeypatch, acme):
    run("--tenant", str(acme.pk), "--pk", "--username", "root", "--noinput")
    assert Member.for_tenant(acme).objects.filter(username="root").exists()


def test_createtenantsuperuser_refuses_an_unknown_tenant(acme):
    with pytest.raises(CommandError, match="No tenant has the schema or name 'initech'"):
        run("--tenant", "initech", "--username", "root", "--noinput")
    with pytest.raises(CommandError, match="No tenant has the primary key 'x'"):
        run("--tenant", "x", "--pk", "--username", "root", "--noinput")


def test_createtenantsuperuser_refuses_a_tenant_that_is_not_ready(transactional_db):
    Customer._base_manager.bulk_create([Customer(name="setup", db_schema="tenant_setup")])
    with pytest.raises(CommandError, match="Cannot create a user in tenant setup"):
        run("--tenant", "setup", "--username", "root", "--noinput")


def test_createtenantsuperuser_refuses_a_taken_or_missing_username(acme, alice):
    with pytest.raises(CommandError, match="already taken in this tenant"):
        run("--tenant", "acme", "--username", "alice", "--noinput")
    with pytest.raises(CommandError, match="You must use --username"):
        run("--tenant", "acme", "--noinput")
    with pytest.raises(CommandError, match="Enter a valid email address"):
        run("--tenant", "acme", "--username", "root", "--email", "nope", "--noinput")


def test_createtenantsuperuser_needs_a_terminal_to_ask(acme):
    with pytest.raises(CommandError, match="Not running in a terminal"):
        run("--tenant", "acme", stdin=io.StringIO())


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_createtenantsuperuser_asks_for_what_it_is_not_given(monkeypatch, acme, alice):
    answers = iter(["alice", "root", "root@acme.test"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    passwords = iter(["one", "two", PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="Password: ": next(passwords))
    err = io.StringIO()
    call_command(
        "createtenantsuperuser",
        "--tenant",
        "acme",
        stdin=Terminal(),
        stdout=io.StringIO(),
        stderr=err,
    )
    root = Member.for_tenant(acme).objects.get(username="root")
    assert root.is_superuser and root.check_password(PASSWORD)
    messages = err.getvalue()
    assert "already taken" in messages  # "alice", then "root"
    assert "didn't match" in messages  # "one" and "two"


def test_createtenantsuperuser_validates_passwords_when_it_asks(monkeypatch, acme):
    validators = [{"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"}]
    answers = iter(["root", "", "n"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    passwords = iter(["short", "short", PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="Password: ": next(passwords))
    err = io.StringIO()
    with override_settings(AUTH_PASSWORD_VALIDATORS=validators):
        call_command(
            "createtenantsuperuser",
            "--tenant",
            "acme",
            stdin=Terminal(),
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "too short" in err.getvalue()
    assert Member.for_tenant(acme).objects.get().check_password(PASSWORD)


def test_the_tenant_user_table_is_built_with_every_tenant(acme):
    table = storage.table_name(acme.db_schema, "authapp_member", acme.database)
    assert table in storage.existing_tenant_tables(acme.db_schema, acme.database)


# -- the public paths of the package ---------------------------------------------------


class ProjectUserManager(auth.TenantUserManager):
    """A project's own manager of tenant users (keeps its own path in migrations)."""


def test_the_dotted_paths_settings_sessions_and_migrations_store_stay_the_public_ones():
    """tenancy.auth is a package of modules; what settings name, sessions store
    (BACKEND_SESSION_KEY) and migration files import is still tenancy.auth.X."""
    assert import_string("tenancy.auth.TenantUserBackend") is TenantUserBackend
    assert import_string("tenancy.auth.TenantAuthenticationMiddleware") is (
        TenantAuthenticationMiddleware
    )
    assert auth.TenantUserManager().deconstruct()[1] == "tenancy.auth.TenantUserManager"
    assert ProjectUserManager().deconstruct()[1] == "tests.test_auth.ProjectUserManager"

"""The projects' own tenant tasks: ``@tenant_task``, ``for_each_tenant()`` and the beat task.

Messages are read back from a private Redis (the ``broker`` fixture) on a queue no
worker consumes; the tests marked ``postgresql`` run a real ``celery worker``.
"""

from __future__ import annotations

import base64
import json
import pickle
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from celery import Task
from django.db import connection, transaction
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

from tenancy import tasks
from tenancy._delivery import dispatch
from tenancy._orchestration import user_tasks
from tenancy._orchestration.user_tasks import Reference, Verdict
from tenancy.exceptions import TenantNotReady
from tenancy.models import TenantOperation, TenantState
from tests.conftest import drop_all_tenant_storage
from tests.testapp.models import Customer, Project
from tests.testapp.tasks import (
    PROBE_QUEUE,
    ReadOnlyWhileMoving,
    delete_own_tenant,
    probe,
    record_run,
    write_while_moving,
)
from tests.workers import Worker, hold_tenant_ddl, release_tenant_ddl, wait_for

# -- helpers --


@pytest.fixture
def probe_queue(broker, settings, transactional_db):
    """Send to the private broker for real (not inline); read what reached PROBE_QUEUE."""
    settings.TENANCY_EAGER = False
    dispatch.reset()
    client = redis.Redis.from_url(broker.url)
    client.delete(PROBE_QUEUE)
    yield lambda: _messages(client)
    client.delete(PROBE_QUEUE)
    dispatch.reset()


def _messages(client: redis.Redis) -> list[dict]:
    """Decode the messages waiting in PROBE_QUEUE (kombu's Redis transport: a list)."""
    decoded = []
    for raw in client.lrange(PROBE_QUEUE, 0, -1):
        envelope = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        decoded.append({"headers": envelope["headers"], "args": args, "kwargs": kwargs})
    return decoded


def _bulk_ready_rows(count: int, prefix: str) -> list[int]:
    """Insert ``count`` ready tenant rows without schemas (their tasks never run), fast:
    the plain QuerySet's bulk_create, not the tenant model's (which provisions)."""
    rows = [
        Customer(
            name=f"{prefix}{i}",
            state=TenantState.READY,
            db_schema=f"tenant_{prefix}{i}",
            incarnation=uuid.uuid4().hex,
            database="default",
        )
        for i in range(count)
    ]
    QuerySet(Customer).bulk_create(rows, batch_size=500)
    return sorted(Customer.objects.filter(name__startswith=prefix).values_list("pk", flat=True))


def _countdowns(messages: list[dict], sent_at: float) -> list[float]:
    """Return each message's countdown: its ETA less the moment of sending."""
    etas = [datetime.fromisoformat(m["headers"]["eta"]).timestamp() for m in messages]
    return sorted(eta - sent_at for eta in etas)


# -- what is sent --


def test_a_tenant_task_is_sent_with_the_tenants_pk_and_incarnation_never_the_instance(
    make_tenant, probe_queue
):
    tenant = make_tenant("tt_message")
    probe.delay(tenant, "since", flag=True)
    (message,) = probe_queue()
    assert message["args"] == [tenant.pk, "since"]
    assert message["kwargs"] == {"flag": True, "_tenancy": {"incarnation": tenant.incarnation}}
    assert message["headers"]["task"] == "tests.testapp.tasks.probe"
    assert tenant.db_schema not in json.dumps(message["args"])


def test_a_bare_pk_is_sent_with_the_incarnation_that_has_it_now(make_tenant, probe_queue):
    tenant = make_tenant("tt_bare_pk")
    probe.delay(tenant.pk)
    (message,) = probe_queue()
    assert message["args"] == [tenant.pk]
    assert message["kwargs"]["_tenancy"] == {"incarnation": tenant.incarnation}


def test_delay_in_a_transaction_is_sent_at_commit_and_never_on_rollback(make_tenant, probe_queue):
    tenant = make_tenant("tt_commit")
    with transaction.atomic():
        result = probe.delay(tenant, "kept")
        assert probe_queue() == []
    (message,) = probe_queue()
    assert message["headers"]["id"] == result.id
    with pytest.raises(RuntimeError), transaction.atomic():
        probe.delay(tenant, "rolled back")
        raise RuntimeError
    assert len(probe_queue()) == 1


def _report(tenant):
    return tenant.pk


def test_a_task_may_go_to_the_queue_of_its_tenants_database(settings):
    settings.TENANCY_CELERY_QUEUE = "work-{database}"
    assert record_run.queue_of("other") == "work-other"
    per_database = tasks.tenant_task(queue="reports-{database}", name="tests.report")(_report)
    assert per_database.queue_of("x") == "reports-x"
    assert getattr(per_database, "queue", None) is None
    assert probe.queue_of("other") is None  # a plain queue name is Celery's own option
    assert probe.queue == PROBE_QUEUE


# -- decisions --


def test_each_state_decides_run_wait_or_fail_and_a_missing_or_reused_pk_is_gone(make_tenant):
    tenant = make_tenant("tt_states")
    ref = user_tasks.reference(tenant)
    assert user_tasks.decide(ref).verdict == Verdict.RUN
    for state, verdict in [("pending", "wait"), ("provisioning", "wait"), ("failed", "fail")]:
        Customer.objects.filter(pk=tenant.pk).update(state=state)
        assert user_tasks.decide(ref).verdict == verdict, state
    Customer.objects.filter(pk=tenant.pk).update(state="ready")
    op = TenantOperation.objects.create(
        kind="move", tenant_pk=str(tenant.pk), incarnation=tenant.incarnation,
        schema=tenant.db_schema, source="default", target="other",
    )  # fmt: skip
    assert user_tasks.decide(ref).verdict == Verdict.WAIT
    op.delete()
    assert user_tasks.decide(Reference(tenant.pk, "another incarnation")).verdict == Verdict.GONE
    assert user_tasks.decide(Reference(tenant.pk + 1000)).verdict == Verdict.GONE


def test_waiting_ends_in_failure_once_the_ready_timeout_has_passed(make_tenant, settings):
    tenant = make_tenant("tt_timeout_unit")
    Customer.objects.filter(pk=tenant.pk).update(state="pending")
    settings.TENANCY_TASK_READY_TIMEOUT = 30
    ref = user_tasks.reference(tenant)
    assert user_tasks.decide(ref, waited=29).verdict == Verdict.WAIT
    decision = user_tasks.decide(ref, waited=30)
    assert decision.verdict == Verdict.FAIL
    assert "TENANCY_TASK_READY_TIMEOUT" in decision.reason


# -- eager --


def test_eager_mode_runs_the_task_inline_with_the_same_checks(make_tenant, caplog):
    tenant = make_tenant("tt_eager")
    assert record_run.delay(tenant, "inline").get() == tenant.pk
    assert list(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == ["inline"]

    # Inline nothing can make a tenant ready while the caller waits: not ready at once.
    Customer.objects.filter(pk=tenant.pk).update(state="pending")
    result = record_run.delay(tenant, "too early")
    with pytest.raises(TenantNotReady, match="is not ready \\(state 'pending'\\)"):
        result.get()
    with pytest.raises(TenantNotReady, match="pending"):
        record_run.apply((tenant, "too early"), throw=True)  # task_eager_propagates

    Customer.objects.filter(pk=tenant.pk).update(state="failed", last_error="boom")
    with pytest.raises(TenantNotReady, match="boom"):
        record_run.delay(tenant, "failed").get()
    with pytest.raises(TenantNotReady, match="boom"):
        record_run.apply((tenant.pk, "failed"), throw=True)

    Customer.objects.filter(pk=tenant.pk).update(state="ready", incarnation=uuid.uuid4().hex)
    caplog.set_level("INFO", logger="tenancy.tasks")
    assert record_run.delay(tenant, "another tenant's").get() is None
    assert "pk now belongs to another tenant" in caplog.text
    Customer.objects.filter(pk=tenant.pk).update(incarnation=tenant.incarnation)
    assert list(Project.for_tenant(tenant).objects.values_list("name", flat=True)) == ["inline"]


def test_tenant_not_ready_is_pickled_as_itself_for_celerys_results_and_logs(make_tenant):
    tenant = make_tenant("tt_pickled")
    error = pickle.loads(pickle.dumps(TenantNotReady(tenant, "failed", "disk full")))
    assert type(error) is TenantNotReady and "disk full" in str(error)
    assert (error.state, error.tenant.pk) == ("failed", tenant.pk)


def test_eager_mode_in_a_transaction_runs_at_commit(make_tenant):
    tenant = make_tenant("tt_eager_commit")
    with transaction.atomic():
        record_run.delay(tenant, "at commit")
        assert not Project.for_tenant(tenant).objects.exists()
    assert Project.for_tenant(tenant).objects.get().name == "at commit"


def test_a_task_for_a_deleted_tenant_ends_with_one_log_line(make_tenant, caplog):
    tenant = make_tenant("tt_eager_deleted")
    pk = tenant.pk
    tenant.delete()
    caplog.set_level("INFO", logger="tenancy.tasks")
    caplog.clear()
    assert record_run.delay(pk, "late").get() is None
    lines = [r for r in caplog.records if r.name == "tenancy.tasks"]
    assert len(lines) == 1 and "was deleted; the task ends" in lines[0].getMessage()


def test_a_task_whose_tenant_is_deleted_while_it_runs_ends_without_its_error(make_tenant, caplog):
    tenant = make_tenant("tt_deleted_mid_task")
    caplog.set_level("INFO", logger="tenancy.tasks")
    result = delete_own_tenant.delay(tenant)
    assert not result.failed(), result.result
    assert result.get() is None
    assert "tenant was deleted while the task ran" in caplog.text


def test_a_write_refused_by_a_move_makes_the_task_wait_and_fails_it_inline(make_tenant):
    tenant = make_tenant("tt_moving_mid_task")
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = ReadOnlyWhileMoving()
    assert user_tasks.refused_while_moving(wrapped)
    assert not user_tasks.refused_while_moving(RuntimeError("another error"))
    with pytest.raises(TenantNotReady, match="moving"):
        write_while_moving.apply((tenant,), throw=True)


# -- fan-out --


def test_for_each_tenant_sends_one_task_per_tenant_spread_over_the_window_in_chunks(
    probe_queue, monkeypatch
):
    pks = _bulk_ready_rows(1000, "ff")
    QuerySet(Customer).filter(pk=pks[0]).update(state="failed")  # not in the default states
    monkeypatch.setattr(user_tasks, "CHUNK", 100)
    started = time.time()
    with CaptureQueriesContext(connection) as queries:
        sent = tasks.for_each_tenant(probe, "digest", spread=600)
    assert sent == 999 and sent.failed == 0
    messages = probe_queue()
    assert sorted(m["args"][0] for m in messages) == pks[1:]
    assert {m["args"][1] for m in messages} == {"digest"}
    # one COUNT and ten pages of 100 (the last one short): never all the rows at once
    selects = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(selects) == 11 and all("LIMIT 100" in q for q in selects[1:]), selects
    # "even": one 0.6 s slot per tenant, in pk order, over the whole window
    countdowns = _countdowns(messages, started)
    assert countdowns[0] >= -1 and countdowns[-1] <= 600 + 1
    slots = [int(c // (600 / 999)) for c in countdowns]
    assert max(slots) - min(slots) >= 990  # the window is used end to end
    assert max(slots.count(s) for s in set(slots)) <= 3  # and no second gets a herd


def test_for_each_tenant_reads_tenants_with_bounded_memory(probe_queue, monkeypatch, settings):
    """The peak of a fan-out does not grow with the number of tenants (CHUNK of 100)."""
    settings.TENANCY_EAGER = True  # publishing is not what is measured here
    monkeypatch.setattr(user_tasks, "CHUNK", 100)
    monkeypatch.setattr(probe, "apply", lambda *a, **k: _Done())
    peaks = {}
    for count in (200, 1000):
        _bulk_ready_rows(count if count == 200 else 800, f"mem{count}_")
        tracemalloc.start()
        sent = tasks.for_each_tenant(probe, spread=600)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sent == count
    assert peaks[1000] < peaks[200] * 1.5 + 64 * 1024, peaks


class _Done:
    def failed(self) -> bool:
        return False


def test_for_each_tenant_counts_failed_sends_and_stops_when_the_broker_is_down(
    probe_queue, monkeypatch
):
    _bulk_ready_rows(30, "down")
    calls = []

    def fail(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("broker down")

    monkeypatch.setattr(Task, "apply_async", fail)  # what a tenant task's own send calls
    sent = tasks.for_each_tenant(probe)
    assert (int(sent), sent.failed, sent.skipped) == (0, 10, True)
    assert len(calls) == 10


def test_for_each_tenant_takes_states_and_a_queryset_and_refuses_a_plain_task(
    probe_queue,
):
    pks = _bulk_ready_rows(5, "qs")
    QuerySet(Customer).filter(pk=pks[0]).update(state="pending")
    assert tasks.for_each_tenant(probe, states=("pending",)) == 1
    assert tasks.for_each_tenant(probe, queryset=Customer.objects.filter(pk__in=pks[3:])) == 2
    with pytest.raises(ValueError, match="tenant states"):
        tasks.for_each_tenant(probe, states=("deleted",))
    with pytest.raises(TypeError, match="tenant tasks"):
        tasks.for_each_tenant(tasks.reconcile)


def test_the_beat_task_sends_a_tenant_task_by_name(probe_queue):
    pks = _bulk_ready_rows(3, "beat")
    result = tasks.for_each_tenant_named.apply(
        args=["tests.testapp.tasks.probe"], kwargs={"args": ["nightly"], "spread": 60}
    )
    assert result.get() == 3
    assert sorted(m["args"] for m in probe_queue()) == [[pk, "nightly"] for pk in pks]


def test_the_beat_task_refuses_an_unknown_name_and_a_task_that_is_no_tenant_task(probe_queue):
    with pytest.raises(LookupError, match="No Celery task is named 'myapp.tasks.nope'"):
        tasks.for_each_tenant_named.apply(args=["myapp.tasks.nope"]).get()
    with pytest.raises(TypeError, match="not a tenant task"):
        tasks.for_each_tenant_named.apply(args=["tenancy.reconcile"]).get()


def test_tenants_at_local_hour_picks_the_zones_where_it_is_that_hour():
    at = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # 03:00 in Paris, 21:00 in New York
    zones = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Not/AZone", ""]
    assert user_tasks.zones_at_local_hour(zones, 3, at) == ["Europe/Paris"]
    assert user_tasks.zones_at_local_hour(zones, 21, at) == ["America/New_York"]
    assert user_tasks.zones_at_local_hour(zones, 7, at) == ["Asia/Kolkata"]  # 07:30 there


def test_tenants_at_local_hour_and_the_beat_task_reach_only_the_tenants_at_that_hour(probe_queue):
    # The test tenant model has no time zone field: its names stand in for one here.
    zones = ["Europe/Paris", "America/New_York", "Asia/Kolkata"]
    QuerySet(Customer).bulk_create(
        Customer(name=zone, state="ready", db_schema=f"tenant_tz{i}", incarnation=f"tz{i}")
        for i, zone in enumerate(zones)
    )
    at = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # 03:00 in Paris
    chosen = tasks.tenants_at_local_hour(3, field="name", at=at)
    assert list(chosen.values_list("name", flat=True)) == ["Europe/Paris"]
    here = datetime.now(UTC).astimezone(ZoneInfo("Asia/Kolkata")).hour
    result = tasks.for_each_tenant_named.apply(
        args=["tests.testapp.tasks.probe"], kwargs={"local_hour": here, "timezone_field": "name"}
    )
    kolkata = Customer.objects.get(name="Asia/Kolkata").pk
    assert result.get() == 1 and [m["args"] for m in probe_queue()] == [[kolkata]]


# -- with a real worker --


def _wait_for_projects(tenant, count: int, timeout: float = 30) -> None:
    ready = Customer.objects.filter(pk=tenant.pk, state=TenantState.READY)
    wait_for(ready.exists, timeout, "the tenant to be ready")
    model = Project.for_tenant(ready.get())
    wait_for(lambda: model.objects.count() >= count, timeout, f"{count} run(s) of the task")


def _lines_of(worker: Worker, task_id: str) -> list[str]:
    """Return the worker's log lines about ``task_id`` (in Celery's format: the tenancy
    logger's console handler writes each of its lines a second time, bare)."""
    lines = worker.output().splitlines()
    return [line for line in lines if task_id in line and line.startswith("[20")]


@pytest.fixture
def on_worker(async_lifecycle):
    """The session's worker runs the lifecycle and the tenant tasks; storage dropped after."""
    yield async_lifecycle
    drop_all_tenant_storage()


@pytest.mark.postgresql
def test_a_task_sent_right_after_signup_waits_for_provisioning_then_runs_once(on_worker):
    blocker = hold_tenant_ddl()
    try:
        tenant = Customer.objects.create(name="tt_signup")
        result = record_run.delay(tenant, "welcome")
        wait_for(lambda: "checking again" in "".join(_lines_of(on_worker, result.id)), 30,
                 "the task to wait")  # fmt: skip
        assert Customer.objects.get(pk=tenant.pk).state != TenantState.READY
    finally:
        release_tenant_ddl(blocker)
    _wait_for_projects(tenant, 1)
    time.sleep(2)  # a second run would have had the time to land
    ready = Customer.objects.get(pk=tenant.pk)
    assert list(Project.for_tenant(ready).objects.values_list("name", flat=True)) == ["welcome"]
    assert any("succeeded" in line for line in _lines_of(on_worker, result.id))


@pytest.mark.postgresql
def test_a_task_for_a_deleted_tenant_ends_on_the_worker_without_retries(on_worker):
    tenant = Customer.objects.create(name="tt_worker_deleted").wait_until_ready(timeout=30)
    with transaction.atomic():
        result = record_run.delay(tenant, "never")
        tenant.delete()
    wait_for(lambda: any("succeeded" in ln for ln in _lines_of(on_worker, result.id)), 30,
             "the task to end")  # fmt: skip
    lines = _lines_of(on_worker, result.id)
    assert sum("was deleted; the task ends" in line for line in lines) == 1, lines
    assert not any("] retry:" in line for line in lines), lines


@pytest.mark.postgresql
def test_a_task_for_a_failed_tenant_raises_tenant_not_ready_without_retries(on_worker):
    tenant = Customer.objects.create(name="tt_worker_failed").wait_until_ready(timeout=30)
    Customer.objects.filter(pk=tenant.pk).update(state="failed", last_error="disk full")
    result = record_run.delay(tenant, "never")
    wait_for(lambda: any("raised" in ln for ln in _lines_of(on_worker, result.id)), 30,
             "the task to fail")  # fmt: skip
    lines = _lines_of(on_worker, result.id)
    assert any("TenantNotReady" in line and "disk full" in line for line in lines), lines
    assert not any("] retry:" in line for line in lines), lines


@pytest.mark.postgresql
def test_a_task_gives_up_waiting_after_the_ready_timeout(broker, settings, transactional_db):
    worker = Worker(broker.url, f"tenancy-tests-timeout-{uuid.uuid4().hex[:8]}",
                    concurrency=1, TENANCY_TASK_READY_TIMEOUT="3").start()  # fmt: skip
    try:
        settings.TENANCY_EAGER = False
        settings.TENANCY_CELERY_QUEUE = worker.queue
        tenant = Customer.objects.create(name="tt_worker_timeout").wait_until_ready(timeout=30)
        Customer.objects.filter(pk=tenant.pk).update(state="pending")  # stuck: nobody builds it
        started = time.monotonic()
        result = record_run.delay(tenant, "never")
        wait_for(lambda: any("raised" in ln for ln in _lines_of(worker, result.id)), 30,
                 "the task to give up")  # fmt: skip
        lines = _lines_of(worker, result.id)
        assert any("TENANCY_TASK_READY_TIMEOUT" in line for line in lines), lines
        assert sum("checking again" in line for line in lines) >= 2, lines
        assert time.monotonic() - started < 20
        Customer.objects.filter(pk=tenant.pk).update(state="ready")
        assert not Project.for_tenant(Customer.objects.get(pk=tenant.pk)).objects.exists()
    finally:
        worker.stop()
        drop_all_tenant_storage()


@pytest.mark.postgresql
def test_the_beat_task_by_name_fans_out_through_the_worker(on_worker):
    tenants = [
        Customer.objects.create(name=f"tt_beat{i}").wait_until_ready(timeout=30) for i in range(2)
    ]
    tasks.for_each_tenant_named.app.send_task(
        "tenancy.for_each_tenant",
        args=["tests.testapp.tasks.record_run"],
        kwargs={"args": ["nightly"], "spread": 2},
        queue=on_worker.queue,
    )
    for tenant in tenants:
        _wait_for_projects(tenant, 1)
        assert Project.for_tenant(tenant).objects.get().name == "nightly"


@pytest.mark.postgresql
def test_a_task_for_a_tenant_being_moved_waits_until_the_move_has_finished(on_worker):
    tenant = Customer.objects.create(name="tt_worker_moving").wait_until_ready(timeout=30)
    move = TenantOperation.objects.create(
        kind="move", tenant_pk=str(tenant.pk), incarnation=tenant.incarnation,
        schema=tenant.db_schema, source="default", target="other",
    )  # fmt: skip
    result = record_run.delay(tenant, "after the move")
    wait_for(lambda: any("is moving" in ln for ln in _lines_of(on_worker, result.id)), 30,
             "the task to wait for the move")  # fmt: skip
    assert not Project.for_tenant(tenant).objects.exists()
    TenantOperation.objects.filter(pk=move.pk).update(finished_at=datetime.now(UTC))
    _wait_for_projects(tenant, 1)
    assert Project.for_tenant(tenant).objects.get().name == "after the move"

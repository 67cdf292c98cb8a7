"""The admin desk's providers and catalog import, through the pages, against the sandbox
over HTTP: add and edit (the key never shown again), test connection, sync as a task with
its progress row, the catalog list in constant queries, preview then import."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.importing import ImportPlan, follow_upstream, import_selected, importable
from orders.models import Category, Route, Service
from orders.pricing import base_rate
from providers.models import Provider, ProviderService, SyncRun
from providers.sync import sync_catalog
from providers.tasks import run_requested_sync
from tests.conftest import make_customer, make_provider

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_client(client):
    client.force_login(make_customer("root", balance="0", is_superuser=True, is_staff=True))
    return client


def _add(admin_client, sandbox, **fields):
    data = {"name": "Second", "api_url": sandbox.url, "api_key": sandbox.key,
            "currency": "usd", "rate_to_panel": "1", "low_balance_threshold": "",
            "enabled": "on", **fields}
    return admin_client.post(reverse("desk:admin_provider_add"), data)


def test_an_admin_adds_a_provider_and_its_key_is_never_shown_again(admin_client, sandbox):
    response = _add(admin_client, sandbox, api_key="k" * 24 + "secret")
    provider = Provider.objects.get(name="Second")
    assert response.status_code == 302
    assert provider.api_key == "k" * 24 + "secret" and provider.currency == "USD"
    assert "secret" not in provider.api_key_encrypted
    for name in ("admin_provider", "admin_provider_edit"):
        page = admin_client.get(reverse(f"desk:{name}", args=[provider.pk])).content.decode()
        assert "secret" not in page and "kkkk…cret" in page
    # Saving the edit form with the key left empty keeps it.
    admin_client.post(reverse("desk:admin_provider_edit", args=[provider.pk]), {
        "name": "Second", "api_url": sandbox.url, "api_key": "", "currency": "EUR",
        "rate_to_panel": "1.1", "low_balance_threshold": "5"})
    provider.refresh_from_db()
    assert provider.api_key == "k" * 24 + "secret" and provider.currency == "EUR"
    assert provider.rate_to_panel == Decimal("1.1") and not provider.enabled


def test_adding_needs_a_key_and_a_vetted_url(admin_client, sandbox, settings):
    assert _add(admin_client, sandbox, api_key="").status_code == 200
    settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES = False
    page = _add(admin_client, sandbox)
    assert page.status_code == 200 and not Provider.objects.exists()
    assert "private" in page.content.decode().lower() or "address" in page.content.decode()


def test_test_connection_shows_the_balance_and_service_count(admin_client, provider,
                                                             sandbox):
    url = reverse("desk:admin_provider_test", args=[provider.pk])
    page = admin_client.post(url, **HTMX).content.decode()
    assert 'data-connection="ok"' in page
    assert f"{len(sandbox.services())} services" in page
    assert f"{sandbox.balance(sandbox.key).normalize():f}" in page
    provider.refresh_from_db()  # stored, as a balance check would
    assert provider.balance == sandbox.balance(sandbox.key) and provider.balance_checked_at


def test_test_connection_shows_the_exact_error(admin_client, sandbox):
    provider = make_provider(sandbox, api_key="wrong-key-of-twenty-chars")
    page = admin_client.post(reverse("desk:admin_provider_test", args=[provider.pk]),
                             **HTMX).content.decode()
    assert 'data-connection="error"' in page and "balance:" in page
    assert "wrong-key-of-twenty-chars" not in page  # the key scrubbed from the upstream's text
    sandbox.refuse(5)
    page = admin_client.post(reverse("desk:admin_provider_test", args=[provider.pk]),
                             **HTMX).content.decode()
    assert 'data-connection="error"' in page and "Connection" in page


def test_sync_now_runs_as_a_task_and_its_row_shows_the_result(
        admin_client, provider, sandbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as kicks:
        page = admin_client.post(reverse("desk:admin_provider_sync", args=[provider.pk]),
                                 **HTMX).content.decode()
    run = SyncRun.objects.get(provider=provider)
    assert len(kicks) == 1 and run.phase == SyncRun.Phase.QUEUED
    status_url = reverse("desk:admin_sync_status", args=[provider.pk, run.pk])
    assert f'hx-get="{status_url}"' in page  # polling while it runs
    # A second press while it is queued starts nothing new.
    admin_client.post(reverse("desk:admin_provider_sync", args=[provider.pk]), **HTMX)
    assert SyncRun.objects.count() == 1

    assert run_requested_sync.apply(args=(run.pk,)).get() is True
    assert run_requested_sync.apply(args=(run.pk,)).get() is False  # a duplicate delivery
    run.refresh_from_db()
    assert run.phase == SyncRun.Phase.DONE and run.created == len(sandbox.services())
    assert run.started_at and run.finished_at
    done = admin_client.get(status_url).content.decode()
    assert "hx-get" not in done and f"{run.created} new, 0 changed, 0 retired" in done


def test_a_second_sync_counts_changes_and_the_margin_guards_repricing(
        admin_client, provider, sandbox, settings):
    settings.MIN_MARGIN_PERCENT = 10
    sync_catalog(provider)
    upstream = list(importable(provider)[:3])
    services = import_selected(upstream, ImportPlan(new_category="Guarded",
                                                    markup_percent=Decimal(20)))
    sandbox.update_service(upstream[0].upstream_id, rate=str(upstream[0].cost_rate * 2))
    sandbox.update_service(upstream[1].upstream_id, name="Renamed upstream")
    sandbox.remove_services([upstream[2].upstream_id])
    fixed = services[0]
    Service.objects.filter(pk=fixed.pk).update(fixed_rate=upstream[0].cost_rate * Decimal("1.05"))
    run = SyncRun.objects.create(provider=provider)

    assert run_requested_sync.apply(args=(run.pk,)).get() is True

    run.refresh_from_db()
    assert (run.created, run.changed, run.retired, run.repriced) == (0, 2, 1, 1)
    page = admin_client.get(reverse("desk:admin_provider", args=[provider.pk])).content.decode()
    assert "Renamed upstream" in page and "margin guard" in page  # the change log


def test_a_failed_sync_says_why(provider, sandbox):
    sandbox.refuse(5)
    run = SyncRun.objects.create(provider=provider)
    assert run_requested_sync.apply(args=(run.pk,)).get() is False
    run.refresh_from_db()
    assert run.phase == SyncRun.Phase.FAILED and "services failed" in run.message


def _catalog_queries(admin_client, provider) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(reverse("desk:admin_catalog", args=[provider.pk])).status_code \
            == 200
    return len(queries)


def test_the_catalog_and_provider_lists_take_constant_queries(admin_client, provider, sandbox):
    sandbox.set_catalog_size(20)
    sync_catalog(provider)
    import_selected(list(importable(provider)[:5]), ImportPlan(map_categories=True))
    small = _catalog_queries(admin_client, provider)
    with CaptureQueriesContext(connection) as listing:
        admin_client.get(reverse("desk:admin_providers"))
    sandbox.set_catalog_size(300)
    sync_catalog(provider)
    import_selected(list(importable(provider)[20:120]), ImportPlan(map_categories=True))
    make_provider(sandbox, name="Third")
    assert _catalog_queries(admin_client, provider) == small
    with CaptureQueriesContext(connection) as more:
        admin_client.get(reverse("desk:admin_providers"))
    assert len(more) == len(listing)


def test_the_catalog_searches_and_filters(admin_client, provider):
    sync_catalog(provider)
    one = ProviderService.objects.filter(provider=provider).order_by("upstream_id")[1]
    url = reverse("desk:admin_catalog", args=[provider.pk])
    page = admin_client.get(url, {"q": one.name[:12]}).context["page"]
    assert one in page.object_list
    page = admin_client.get(url, {"category": one.category, "type": one.type}).context["page"]
    assert page.object_list and all(u.category == one.category and u.type == one.type
                                    for u in page.object_list)


def _pick(provider, n):
    return [u.pk for u in importable(provider).filter(type="Default")[:n]]


def test_preview_writes_nothing_then_import_creates_services_at_40_percent(admin_client,
                                                                           provider):
    sync_catalog(provider)
    ids = _pick(provider, 10)
    form = {"ids": ids, "target": "new", "new_category": "Imported", "pricing": "markup",
            "markup_percent": "40", "follow_price": "on", "sync_name": "on"}
    url = reverse("desk:admin_catalog_import", args=[provider.pk])
    preview = admin_client.post(url, {**form, "action": "preview"})
    assert preview.status_code == 200
    assert not Category.objects.filter(name="Imported").exists() and not Service.objects.exists()
    rows = preview.context["rows"]
    assert len(rows) == 10
    for row in rows:
        assert row.price == (row.cost * Decimal("1.4")).quantize(row.price)  # 40% markup
    renamed = {f"name_{ids[0]}": "Our own name"}
    response = admin_client.post(url, {**form, **renamed, "action": "import"})
    assert response.status_code == 302
    services = list(Service.objects.with_routes().filter(category__name="Imported"))
    assert len(services) == 10 and {s.routes.all()[0].provider_service_id
                                    for s in services} == set(ids)
    assert any(s.name == "Our own name" for s in services)
    assert all(s.markup_percent == 40 and s.sync_name and not s.sync_bounds for s in services)
    by_upstream = {s.routes.all()[0].provider_service_id: s for s in services}
    assert [base_rate(by_upstream[r.upstream.pk]) for r in rows] == [r.price for r in rows]
    # The catalog now says where each is sold.
    page = admin_client.get(reverse("desk:admin_catalog", args=[provider.pk])).content.decode()
    assert "Imported" in page


def test_a_fixed_price_not_following_the_cost_and_the_floor_shown(admin_client, provider,
                                                                  settings):
    settings.MIN_MARGIN_PERCENT = 10
    sync_catalog(provider)
    ids = _pick(provider, 2)
    url = reverse("desk:admin_catalog_import", args=[provider.pk])
    cheap = {"ids": ids, "target": "map", "pricing": "fixed", "fixed_rate": "0.000001"}
    preview = admin_client.post(url, {**cheap, "action": "preview"})
    assert all(r.at_floor for r in preview.context["rows"])
    assert "at the floor" in preview.content.decode()
    pinned = {"ids": ids[:1], "target": "map", "pricing": "markup", "markup_percent": "25"}
    admin_client.post(url, {**pinned, "action": "import"})  # follow_price unticked
    service = Service.objects.get()
    upstream = ProviderService.objects.get(pk=ids[0])
    assert service.category.name == upstream.category
    assert service.fixed_rate == base_rate(service)  # today's price, pinned


def test_import_takes_constant_queries(provider, sandbox):
    sandbox.set_catalog_size(400)
    sync_catalog(provider)
    rows = list(importable(provider))
    with CaptureQueriesContext(connection) as few:
        import_selected(rows[:10], ImportPlan(map_categories=True))
    with CaptureQueriesContext(connection) as many:
        import_selected(rows[10:], ImportPlan(map_categories=True))
    assert len(many) == len(few)
    assert Route.objects.count() == len(rows)


def test_a_later_sync_updates_only_what_the_import_allowed(provider, sandbox):
    sync_catalog(provider)
    a, b = importable(provider).filter(type="Default")[:2]
    import_selected([a], ImportPlan(new_category="Follow", sync_name=True, sync_bounds=True))
    import_selected([b], ImportPlan(new_category="Stay"))
    for u in (a, b):
        sandbox.update_service(u.upstream_id, name=f"New name {u.upstream_id}", min=7, max=777)
    sync_catalog(provider)
    follows, stays = Service.objects.get(category__name="Follow"), Service.objects.get(
        category__name="Stay")
    assert follows.name == f"New name {a.upstream_id}"
    assert (follows.min_quantity, follows.max_quantity) == (7, 777)
    assert stays.name == b.name and stays.min_quantity == b.min_quantity
    assert follow_upstream([]) == 0


def test_import_into_one_of_ours_while_the_catalog_is_filtered(admin_client, provider):
    """The filter's upstream `category` travels with the import form beside our category."""
    from desk.models import AuditEntry

    sync_catalog(provider)
    one = importable(provider).filter(type="Default").first()
    ours = Category.objects.create(name="Ours", markup_percent=Decimal(15))
    url = reverse("desk:admin_catalog_import", args=[provider.pk])
    form = {"ids": [one.pk], "category": one.category, "q": one.name[:8], "target": "existing",
            "into": ours.pk, "pricing": "markup", "markup_percent": "", "follow_price": "on",
            "action": "import"}
    assert admin_client.post(url, form).status_code == 302
    service = Service.objects.get()
    assert service.category == ours and service.markup_percent is None  # the category's 15%
    assert AuditEntry.objects.filter(action="catalog.import").get().details["count"] == 1
    # "All matching the filter" takes the filtered rows, not the ticked ones.
    matching = importable(provider).filter(category=one.category, name__icontains=one.name[:8])
    admin_client.post(url, {**form, "ids": [], "all_matching": "on"})
    assert Service.objects.count() == 1 + matching.count()


def test_the_catalog_shows_the_cost_in_both_currencies(admin_client, sandbox):
    provider = make_provider(sandbox, name="Euro", currency="EUR",
                             rate_to_panel=Decimal("2"))
    sync_catalog(provider)
    page = admin_client.get(reverse("desk:admin_catalog", args=[provider.pk]))
    row = page.context["rows"][0]
    assert row.panel_cost == row.upstream.cost_rate * 2
    assert "Cost (EUR)" in page.content.decode()


def test_a_lost_sync_does_not_block_the_button(admin_client, provider,
                                               django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    lost = SyncRun.objects.create(provider=provider,
                                  queued_at=timezone.now() - timedelta(minutes=11))
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(reverse("desk:admin_provider_sync", args=[provider.pk]), **HTMX)
    lost.refresh_from_db()
    assert lost.phase == SyncRun.Phase.FAILED and "no worker" in lost.message
    assert SyncRun.objects.filter(phase=SyncRun.Phase.QUEUED).count() == 1


def test_upstream_categories_map_into_ours_or_new_ones(admin_client, provider):
    sync_catalog(provider)
    by_category: dict[str, ProviderService] = {}
    for u in importable(provider).filter(type="Default"):
        by_category.setdefault(u.category, u)
    first, second, third = list(by_category.values())[:3]
    ours = Category.objects.create(name="Our followers", markup_percent=Decimal(50))
    url = reverse("desk:admin_catalog_import", args=[provider.pk])
    form = {"ids": [first.pk, second.pk, third.pk], "target": "map", "pricing": "markup",
            "follow_price": "on"}
    preview = admin_client.post(url, {**form, "action": "preview"})
    assert [m.upstream for m in preview.context["mapping"]] == sorted(
        [first.category, second.category, third.category])
    mapped = {"mapfrom_1": first.category, "map_1": "Our followers",
              "mapfrom_2": second.category, "map_2": "Brand new",
              "mapfrom_3": third.category, "map_3": ""}  # empty: its own name
    again = admin_client.post(url, {**form, **mapped, "action": "preview"})
    row = next(r for r in again.context["rows"] if r.upstream == first)
    assert row.service.category == ours and row.price == (row.cost * Decimal("1.5")).quantize(
        row.price)
    assert admin_client.post(url, {**form, **mapped, "action": "import"}).status_code == 302
    assert Service.objects.get(routes__provider_service=first).category == ours
    assert Service.objects.get(routes__provider_service=second).category.name == "Brand new"
    assert Service.objects.get(routes__provider_service=third).category.name == third.category


def test_test_connection_on_the_form_before_saving(admin_client, sandbox, settings):
    url = reverse("desk:admin_provider_try")
    page = admin_client.post(url, {"api_url": sandbox.url, "api_key": sandbox.key},
                             **HTMX).content.decode()
    assert 'data-connection="ok"' in page and not Provider.objects.exists()
    wrong = admin_client.post(url, {"api_url": sandbox.url, "api_key": "nope"}, **HTMX)
    assert 'data-connection="error"' in wrong.content.decode()
    # The edit form's empty key means the stored one.
    saved = make_provider(sandbox)
    page = admin_client.post(url, {"api_url": sandbox.url, "api_key": "", "pk": saved.pk},
                             **HTMX).content.decode()
    assert 'data-connection="ok"' in page
    # Every call is vetted: a private address is refused when they are not allowed.
    settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES = False
    page = admin_client.post(url, {"api_url": sandbox.url, "api_key": sandbox.key},
                             **HTMX).content.decode()
    assert 'data-connection="error"' in page and "127.0.0.1" in page


def test_the_change_log_pages_through_in_constant_queries(admin_client, provider, sandbox):
    sandbox.set_catalog_size(30)
    sync_catalog(provider)
    url = reverse("desk:admin_provider", args=[provider.pk])
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    sandbox.set_catalog_size(200)
    sync_catalog(provider)
    with CaptureQueriesContext(connection) as many:
        page = admin_client.get(url)
    assert len(many) == len(few)
    assert len(page.context["changes"]) == 50 and page.context["page"].paginator.count == 200
    assert admin_client.get(url, {"page": 4}).context["page"].object_list

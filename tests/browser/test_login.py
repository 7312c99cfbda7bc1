"""Admin login through the real form, in Chromium, against live_server."""

from __future__ import annotations

from django.contrib import admin
from playwright.sync_api import Page, expect

from tests.browser import screenshot, submit_admin_login
from tests.factories import OperatorFactory, WorkerFactory


def test_operator_login_shows_admin_index(admin_page, live_server) -> None:
    operator = OperatorFactory(username="olivia")

    page = admin_page(operator)

    expect(page).to_have_url(f"{live_server.url}/admin/")
    # Read the titles from the admin site, so that renaming them breaks no test.
    expect(page.locator("#site-name")).to_have_text(admin.site.site_header)
    expect(page.get_by_role("heading", name=admin.site.index_title)).to_be_visible()
    expect(page.locator("#user-tools")).to_contain_text("Welcome, olivia.")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    screenshot(page, "login-index.png")


def test_worker_login_is_rejected(page: Page, live_server) -> None:
    worker = WorkerFactory(username="walter")

    submit_admin_login(page, worker.username)

    expect(page).to_have_url(f"{live_server.url}/admin/login/")
    expect(page.locator(".errornote")).to_contain_text(
        "Please enter the correct username and password for a staff account."
    )
    expect(page.locator("#user-tools")).to_have_count(0)
    screenshot(page, "login-worker-rejected.png")


def test_login_page_stylesheets_load(page: Page) -> None:
    page.goto("/admin/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()

    # Resource Timing lists every stylesheet that the page requested, with its
    # HTTP status, which is 0 when the load failed.
    entries = page.evaluate(
        """() => performance.getEntriesByType("resource")
            .filter(entry => entry.initiatorType === "link")
            .map(entry => ({url: entry.name, status: entry.responseStatus}))"""
    )
    urls = [entry["url"] for entry in entries]
    failed = [f"{entry['status']} {entry['url']}" for entry in entries if entry["status"] != 200]
    assert any("/static/admin/css/" in url for url in urls), urls
    assert failed == []

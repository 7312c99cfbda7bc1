"""Browser-test fixtures: Debian's Chromium, driven by Playwright, against live_server.

Every test in this folder gets the ``browser`` marker. None needs PostgreSQL,
so they run on SQLite too. pytest-django's ``live_server`` serves the test
database and, because ``django.contrib.staticfiles`` is installed, the
admin's static files. Tests that use it get transactional database access.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.browser import PASSWORD, screenshot, submit_admin_login

CHROMIUM_PATH = Path("/usr/bin/chromium")

#: Default for every Playwright action, navigation and ``expect`` check.
TIMEOUT_MS = 10_000

#: Bound on starting Chromium, which can take longer than a page action.
LAUNCH_TIMEOUT_MS = 30_000

#: Chromium flags that keep it off every host but 127.0.0.1 (no background
#: requests, no QUIC, no proxy, no name resolution except for 127.0.0.1) and
#: let it run as root without a GPU. Playwright launches each browser with a
#: fresh temporary user data dir, which it deletes on close.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]

BROWSER_TESTS_DIR = Path(__file__).resolve().parent

expect.set_options(timeout=TIMEOUT_MS)


def pytest_configure(config: pytest.Config) -> None:
    # live_server binds to localhost by default, but the host
    # resolver rules in CHROMIUM_ARGS make "localhost" fail with
    # ERR_NAME_NOT_RESOLVED. This sets the address for the whole run, and an
    # explicit --liveserver or DJANGO_LIVE_TEST_SERVER_ADDRESS still wins.
    if not config.getoption("liveserver") and not os.environ.get(
        "DJANGO_LIVE_TEST_SERVER_ADDRESS"
    ):
        config.option.liveserver = "127.0.0.1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing_chromium = pytest.mark.skip(
        reason=f"needs Debian's Chromium at {CHROMIUM_PATH}: "
        "apt-get install chromium, or run tests/run.sh as root"
    )
    for item in items:
        if not item.path.is_relative_to(BROWSER_TESTS_DIR):
            continue
        item.add_marker(pytest.mark.browser)
        if not CHROMIUM_PATH.exists():
            item.add_marker(missing_chromium)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the item, so that `page` can tell at
    # teardown whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, started once for this folder's tests.

    While it runs, it keeps an asyncio event loop running in the test thread,
    so Django would reject every ORM call there as coming from async code
    (SynchronousOnlyOperation). DJANGO_ALLOW_ASYNC_UNSAFE lifts that check
    for exactly that time, because the test thread runs no async code of its
    own. Package scope stops Playwright, and restores the check, before the
    tests of other folders run.
    """
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as instance:
            yield instance


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from Debian's package, shared by this folder's tests."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM_PATH,
        headless=True,
        args=CHROMIUM_ARGS,
        timeout=LAUNCH_TIMEOUT_MS,
    )
    yield browser
    browser.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, live_server) -> Iterator[Page]:
    """A page in a fresh browser context, with live_server as its base URL.

    Relative URLs such as ``page.goto("/admin/")`` go to live_server. When
    the test fails, the page is saved as ``failed-<test name>.png``.
    """
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        yield page

        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
            screenshot(page, f"failed-{test_name}.png")
    finally:
        context.close()


@pytest.fixture
def admin_page(page: Page) -> Callable[..., Page]:
    """Return a function that logs a Django user in through the admin login form.

    ``admin_page(user)`` submits ``/admin/login/`` with the user's username
    and ``password`` (by default the factories' password), fails the test
    if the form shows an error, and returns the page on the admin index.
    """

    def log_in(user, password: str = PASSWORD) -> Page:
        username = user.get_username()
        submit_admin_login(page, username, password)

        error = page.locator(".errornote")
        if error.count():
            pytest.fail(f"Admin login as {username!r} failed: {error.inner_text().strip()}")
        expect(page.locator("#user-tools")).to_be_visible()
        return page

    return log_in

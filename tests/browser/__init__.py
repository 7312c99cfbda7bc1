"""Helpers for the browser tests: admin login through the form, screenshots.

The fixtures (``page``, ``admin_page`` and the browser behind them) are in
``conftest.py`` beside this file.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

#: The password that ``tests.factories.UserFactory`` gives every user.
PASSWORD = "correct horse battery staple"

#: Git-ignored folder for screenshots, kept after the run for people to look at.
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


def submit_admin_login(page: Page, username: str, password: str = PASSWORD) -> None:
    """Fill in and submit the admin login form, then wait for the response page.

    Returns once the browser shows either the admin with the user tools in
    its header (login accepted) or the form again with an error note (login
    rejected). Callers check which.
    """
    page.goto("/admin/login/")
    page.get_by_label("Username:").fill(username)
    page.get_by_label("Password:").fill(password)
    page.get_by_role("button", name="Log in").click()
    # A fresh browser context has no session, so neither element is on the
    # login page before the POST returns.
    expect(page.locator("#user-tools, .errornote").first).to_be_visible()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of ``page`` as ``SCREENSHOT_DIR / name`` and return its path."""
    if not name.endswith(".png"):
        raise ValueError(f"Screenshot name {name!r} must end with .png.")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / name
    page.screenshot(path=path, full_page=True)
    return path

"""The admin site as Relor's operator console."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from workflows.clock import db_now
from workflows.selectors import dashboard_get


class RelorAdminSite(admin.AdminSite):
    site_header = "Relor operator console"
    site_title = "Relor"
    index_title = "Operations"
    # The admin is the whole user interface; there is no public site to link to.
    site_url = None

    def index(self, request, extra_context=None):
        """Show workflow counts and the attention queue's age above the model list."""
        if not request.user.has_perm("workflows.view_workflow"):
            return super().index(request, extra_context)

        now = db_now()
        dashboard = dashboard_get(now=now)
        oldest_wait = None
        if dashboard.oldest_attention_at is not None:
            oldest_wait = now - dashboard.oldest_attention_at

        context = {
            "dashboard": dashboard,
            "oldest_attention_wait": oldest_wait,
            "rendered_at": timezone.localtime(now),
            **(extra_context or {}),
        }
        return super().index(request, context)

"""Shared admin pieces: read-only model admins and the graph picture."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Machine-written rows: viewable with the view permission, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def render_context(model_admin: admin.ModelAdmin, request, title: str, **extra) -> dict:
    """Return the context every admin page of ours needs, plus ``extra``."""
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        **extra,
    }

"""Read-only admin page for jobs."""

from django.contrib import admin

from jobs.models import Job
from workflows.admin import ReadOnlyAdmin


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["id", "workflow", "node", "attempt", "status", "worker", "deadline"]
    list_filter = ["status", "operation"]
    search_fields = ["=workflow__id", "worker"]

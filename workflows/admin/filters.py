"""List filters of the workflow admin."""

from __future__ import annotations

from django.contrib import admin

from workflows.clock import db_now
from workflows.models import GraphDefinition, Workflow
from workflows.selectors import workflows_waiting_for_worker

#: Most node choices one filter lists, so the sidebar stays usable.
MAX_NODE_CHOICES = 200


class GraphVersionFilter(admin.SimpleListFilter):
    title = "graph and version"
    parameter_name = "graph"

    def lookups(self, request, model_admin):
        versions = GraphDefinition.objects.order_by("name", "-version")
        return [(str(row.pk), str(row)) for row in versions[:MAX_NODE_CHOICES]]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            return queryset.filter(graph_id=int(self.value()))
        return queryset


class CurrentNodeFilter(admin.SimpleListFilter):
    title = "current node"
    parameter_name = "node"

    def lookups(self, request, model_admin):
        nodes = (
            Workflow.objects.order_by("current_node")
            .values_list("current_node", flat=True)
            .distinct()
        )
        return [(node, node) for node in nodes[:MAX_NODE_CHOICES]]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(current_node=self.value())
        return queryset


class WaitingForWorkerFilter(admin.SimpleListFilter):
    title = "waiting for a worker"
    parameter_name = "waiting_for_worker"

    def lookups(self, request, model_admin):
        return [("yes", "longer than the node's timeout")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            waiting = workflows_waiting_for_worker(now=db_now())
            return queryset.filter(pk__in=waiting.values("pk"))
        return queryset

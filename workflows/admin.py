"""Read-only admin pages for graphs, workflows and transitions."""

from django.contrib import admin

from workflows.models import GraphDefinition, Transition, Workflow


class ReadOnlyAdmin(admin.ModelAdmin):
    """Machine-written rows: viewable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GraphDefinition)
class GraphDefinitionAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "created_at", "created_by"]
    list_filter = ["name"]


class TransitionInline(admin.TabularInline):
    model = Transition
    fields = ["number", "from_node", "to_node", "label", "actor_type", "actor", "reason", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "graph",
        "status",
        "current_node",
        "attempt",
        "attention",
        "is_paused",
        "created_at",
    ]
    list_filter = ["status", "attention", "is_paused", "graph"]
    list_select_related = ["graph"]
    search_fields = ["=id", "business_key"]
    inlines = [TransitionInline]

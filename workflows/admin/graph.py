"""Graph definitions: list, version page with picture and tables, upload, heatmap."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from workflows.admin.base import ReadOnlyAdmin, render_context
from workflows.definitions import graph_definition_upload, graph_of
from workflows.exceptions import RelorError
from workflows.graphs import graph_to_dot
from workflows.models import GraphDefinition, WorkflowStatus
from workflows.selectors import graph_heatmap


class GraphUploadForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="A new version is stored under this name.")
    document = forms.CharField(
        label="Graph JSON",
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "class": "vLargeTextField"}),
        help_text="The graph as JSON: a start node, nodes and labelled edges, as in "
        "the files of examples/graphs/.",
    )

    def __init__(self, *args, username: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.username = username
        self.definition: GraphDefinition | None = None
        self.created = False

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            document = json.loads(cleaned["document"])
        except ValueError as error:
            raise forms.ValidationError({"document": f"The text is not valid JSON: {error}"})

        try:
            self.definition, self.created = graph_definition_upload(
                name=cleaned["name"], document=document, created_by=self.username
            )
        except RelorError as error:
            field = "name" if error.detail.startswith("name:") else "document"
            raise forms.ValidationError({field: error.detail})
        return cleaned


@admin.register(GraphDefinition)
class GraphDefinitionAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "node_count", "running_count", "created_at", "created_by"]
    list_filter = ["name"]
    search_fields = ["name"]

    class Media:
        css = {"all": ["workflows/admin.css"]}

    def has_add_permission(self, request) -> bool:
        return request.user.has_perm("workflows.upload_graphdefinition")

    def get_queryset(self, request):
        running = Count("workflows", filter=Q(workflows__status=WorkflowStatus.RUNNING))
        return super().get_queryset(request).annotate(running=running)

    @admin.display(description="nodes")
    def node_count(self, definition: GraphDefinition) -> int:
        return len(definition.spec.get("nodes", []))

    @admin.display(description="running workflows", ordering="running")
    def running_count(self, definition: GraphDefinition) -> int:
        return definition.running

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        heatmap = path(
            "<int:definition_id>/heatmap/",
            self.admin_site.admin_view(self.heatmap_view),
            name="%s_%s_heatmap" % info,
        )
        return [heatmap, *super().get_urls()]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied

        username = request.user.get_username()
        form = GraphUploadForm(request.POST or None, username=username)
        if request.method == "POST" and form.is_valid():
            verb = "Stored" if form.created else "Unchanged, already stored as"
            messages.success(request, f"{verb} {form.definition}.")
            url = reverse("admin:workflows_graphdefinition_change", args=[form.definition.pk])
            return HttpResponseRedirect(url)

        context = render_context(self, request, "Upload a graph definition", form=form)
        return TemplateResponse(request, "admin/workflows/graphdefinition/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        definition = self._get_definition(request, object_id)
        graph = graph_of(definition)
        context = render_context(
            self,
            request,
            str(definition),
            definition=definition,
            graph=graph,
            nodes=list(graph.nodes.values()),
            dot=graph_to_dot(graph),
        )
        return TemplateResponse(request, "admin/workflows/graphdefinition/detail.html", context)

    def heatmap_view(self, request, definition_id: int):
        definition = self._get_definition(request, definition_id)
        graph = graph_of(definition)
        counts = graph_heatmap(definition=definition)
        links = {node_id: _workflow_list_url(definition, node_id) for node_id in graph.nodes}
        rows = [(node_id, counts.get(node_id, 0), links[node_id]) for node_id in graph.nodes]
        context = render_context(
            self,
            request,
            f"Heatmap of {definition}",
            definition=definition,
            rows=rows,
            total=sum(counts.values()),
            dot=graph_to_dot(graph, node_counts=counts, node_links=links),
        )
        return TemplateResponse(request, "admin/workflows/graphdefinition/heatmap.html", context)

    def _get_definition(self, request, object_id) -> GraphDefinition:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not str(object_id).isdigit():
            raise Http404(f"Graph definition {object_id} does not exist.")
        definition = GraphDefinition.objects.filter(pk=int(object_id)).first()
        if definition is None:
            raise Http404(f"Graph definition {object_id} does not exist.")
        return definition


def _workflow_list_url(definition: GraphDefinition, node_id: str) -> str:
    query = urlencode({"graph": definition.pk, "node": node_id, "status__exact": "running"})
    return f"{reverse('admin:workflows_workflow_changelist')}?{query}"

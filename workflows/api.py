"""Workflow API: graph definitions, starting workflows and operator control."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from relor_site.permissions import require_permission
from workflows import selectors, services
from workflows.definitions import graph_definition_get, graph_definition_upload, graph_of
from workflows.graphs import graph_to_dot
from workflows.models import GraphDefinition

CanViewGraphs = require_permission("workflows.view_graphdefinition")
CanUploadGraphs = require_permission("workflows.upload_graphdefinition")
CanViewWorkflows = require_permission("workflows.view_workflow")
CanStartWorkflows = require_permission("workflows.start_workflow")
CanResolveWorkflows = require_permission("workflows.resolve_workflow")
CanControlWorkflows = require_permission("workflows.control_workflow")


class GraphDefinitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = GraphDefinition
        fields = ["name", "version", "digest", "created_at", "created_by", "spec"]


class GraphDefinitionListApi(APIView):
    """List graph definitions (GET) or upload a new version (POST)."""

    def get_permissions(self):
        permission = CanUploadGraphs if self.request.method == "POST" else CanViewGraphs
        return [permission()]

    def get(self, request):
        definitions = GraphDefinition.objects.order_by("name", "-version")
        if request.query_params.get("name"):
            definitions = definitions.filter(name=request.query_params["name"])
        fields = ["name", "version", "digest", "created_at", "created_by"]
        return Response({"results": list(definitions.values(*fields)[:1000])})

    def post(self, request):
        body = request.data if isinstance(request.data, dict) else {}
        document = body.get("graph", {k: v for k, v in body.items() if k != "name"})
        definition, created = graph_definition_upload(
            name=body.get("name"), document=document, created_by=request.user.get_username()
        )
        status = 201 if created else 200
        return Response(GraphDefinitionSerializer(definition).data, status=status)


class GraphDefinitionDetailApi(APIView):
    """One version of a graph (the latest without a version), with its DOT text."""

    permission_classes = [CanViewGraphs]

    def get(self, request, name: str, version: int | None = None):
        definition = graph_definition_get(name=name, version=version)
        data = GraphDefinitionSerializer(definition).data
        data["dot"] = graph_to_dot(graph_of(definition))
        return Response(data)


class WorkflowSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    graph = serializers.CharField(source="graph.name")
    graph_version = serializers.IntegerField(source="graph.version")
    status = serializers.CharField()
    current_node = serializers.CharField()
    transition_id = serializers.IntegerField()
    attempt = serializers.IntegerField()
    is_paused = serializers.BooleanField()
    attention = serializers.CharField()
    due_at = serializers.DateTimeField()
    business_key = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()


class WorkflowPagination(CursorPagination):
    ordering = ("-created_at", "id")
    page_size = 100


class WorkflowListApi(APIView):
    """List workflows with filters (GET) or start one (POST)."""

    def get_permissions(self):
        permission = CanStartWorkflows if self.request.method == "POST" else CanViewWorkflows
        return [permission()]

    class StartSerializer(serializers.Serializer):
        graph = serializers.CharField(max_length=100)
        version = serializers.IntegerField(min_value=1, required=False)
        id = serializers.UUIDField(required=False)
        input = serializers.JSONField(required=False, default=dict)
        business_key = serializers.CharField(max_length=200, required=False, default="")

    def get(self, request):
        workflows = selectors.workflow_list(filters=request.query_params)
        paginator = WorkflowPagination()
        page = paginator.paginate_queryset(workflows, request, view=self)
        return paginator.get_paginated_response(WorkflowSerializer(page, many=True).data)

    def post(self, request):
        data = self.StartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data

        workflow, created = services.workflow_start(
            graph_name=params["graph"],
            version=params.get("version"),
            workflow_id=params.get("id"),
            input=params["input"],
            business_key=params["business_key"],
        )
        return Response(workflow_detail(workflow), status=201 if created else 200)


def workflow_detail(workflow) -> dict:
    data = WorkflowSerializer(workflow).data
    job = selectors.workflow_live_job(workflow=workflow)
    data["labels"] = selectors.workflow_labels(workflow=workflow)
    data["input"] = workflow.input
    data["job"] = None
    if job is not None:
        data["job"] = {
            "id": job.id,
            "status": job.status,
            "attempt": job.attempt,
            "worker": job.worker,
            "deadline": job.deadline,
        }
    data["deadline"] = job.deadline if job is not None else None
    return data


class WorkflowDetailApi(APIView):
    """Status, position, available labels, attempt and deadline of one workflow."""

    permission_classes = [CanViewWorkflows]

    def get(self, request, workflow_id):
        workflow = selectors.workflow_get(workflow_id=workflow_id)
        return Response(workflow_detail(workflow))


class WorkflowHistoryApi(APIView):
    """Transitions oldest first with wall time per step, and the graph with the path."""

    permission_classes = [CanViewWorkflows]

    def get(self, request, workflow_id):
        workflow = selectors.workflow_get(workflow_id=workflow_id)
        history = selectors.workflow_history(workflow=workflow)
        transitions = [
            {
                "transition_id": entry.transition.number,
                "from_node": entry.transition.from_node,
                "to_node": entry.transition.to_node,
                "label": entry.transition.label,
                "actor_type": entry.transition.actor_type,
                "actor": entry.transition.actor,
                "job_id": entry.transition.job_id,
                "reason": entry.transition.reason,
                "created_at": entry.transition.created_at,
                "wall_time_seconds": entry.wall_time_seconds,
            }
            for entry in history
        ]
        dot = selectors.workflow_dot(workflow=workflow, history=history)
        return Response({"workflow_id": str(workflow.id), "transitions": transitions, "dot": dot})


class WorkflowAdvanceApi(APIView):
    """Choose a label at the current node, based on the transition id the caller saw."""

    permission_classes = [CanResolveWorkflows]

    class InputSerializer(serializers.Serializer):
        transition_id = serializers.IntegerField(min_value=0)
        label = serializers.CharField(trim_whitespace=False, max_length=100)
        reason = serializers.CharField(max_length=2000)

    def post(self, request, workflow_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data

        workflow = services.workflow_advance(
            workflow_id=workflow_id,
            transition_id=params["transition_id"],
            label=params["label"],
            reason=params["reason"],
            username=request.user.get_username(),
        )
        return Response(workflow_detail(workflow))


class WorkflowControlApi(APIView):
    """Cancel, retry, pause or resume a workflow; the action comes from the URL."""

    permission_classes = [CanControlWorkflows]
    control_action = ""

    ACTIONS = {
        "cancel": services.workflow_cancel,
        "retry": services.workflow_retry,
        "pause": services.workflow_pause,
        "resume": services.workflow_resume,
    }

    def post(self, request, workflow_id):
        service = self.ACTIONS[self.control_action]
        workflow = service(workflow_id=workflow_id, username=request.user.get_username())
        return Response(workflow_detail(workflow))

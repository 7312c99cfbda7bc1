"""Workflow API: graph definitions, starting workflows and operator control."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from relor_site.api_errors import ERROR_RESPONSES
from relor_site.permissions import require_permission
from relor_site.serializers import (
    NameField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from workflows import selectors, services
from workflows.definitions import graph_definition_get, graph_definition_upload, graph_of
from workflows.graphs import graph_to_dot
from workflows.models import Attention, GraphDefinition, WorkflowStatus

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


class GraphDefinitionSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = GraphDefinition
        fields = ["name", "version", "digest", "created_at", "created_by"]


class GraphDefinitionDetailSerializer(GraphDefinitionSerializer):
    dot = serializers.CharField(help_text="The graph as Graphviz DOT.")

    class Meta(GraphDefinitionSerializer.Meta):
        fields = [*GraphDefinitionSerializer.Meta.fields, "dot"]


class GraphDefinitionListApi(APIView):
    """List graph definitions (GET) or upload a new version (POST)."""

    def get_permissions(self):
        permission = CanUploadGraphs if self.request.method == "POST" else CanViewGraphs
        return [permission()]

    @extend_schema(
        operation_id="graph_list",
        responses={
            200: inline_serializer(
                "GraphDefinitionList",
                {"results": GraphDefinitionSummarySerializer(many=True)},
            ),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        definitions = GraphDefinition.objects.order_by("name", "-version")
        if request.query_params.get("name"):
            definitions = definitions.filter(name=request.query_params["name"])
        fields = ["name", "version", "digest", "created_at", "created_by"]
        return Response({"results": list(definitions.values(*fields)[:1000])})

    @extend_schema(
        request=inline_serializer(
            "GraphUpload",
            {"name": serializers.CharField(), "graph": serializers.JSONField()},
        ),
        responses={
            200: GraphDefinitionSerializer,
            201: GraphDefinitionSerializer,
            **ERROR_RESPONSES,
        },
    )
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

    @extend_schema(
        operation_id="graph_retrieve",
        responses={200: GraphDefinitionDetailSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, name: str, version: int | None = None):
        definition = graph_definition_get(name=name, version=version)
        data = GraphDefinitionSerializer(definition).data
        data["dot"] = graph_to_dot(graph_of(definition))
        return Response(data)


class GraphDefinitionLatestApi(GraphDefinitionDetailApi):
    """The latest version of a graph, with its DOT text."""

    @extend_schema(
        operation_id="graph_latest_retrieve",
        responses={200: GraphDefinitionDetailSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, name: str):
        return super().get(request, name)


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


class LiveJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    worker = serializers.CharField()
    deadline = serializers.DateTimeField(allow_null=True)


class WorkflowDetailSerializer(WorkflowSerializer):
    """Documents the detail body that ``workflow_detail`` builds."""

    labels = serializers.ListField(child=serializers.CharField())
    input = serializers.JSONField()
    job = LiveJobSerializer(allow_null=True)
    deadline = serializers.DateTimeField(allow_null=True)


class WorkflowPagination(CursorPagination):
    ordering = ("-created_at", "id")
    page_size = 100

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise serializers.ValidationError(
                {"cursor": ["Invalid cursor. Use the next or previous link of a page."]}
            ) from None


class WorkflowFilterSerializer(StrictSerializer):
    """Query parameters of the workflow list."""

    status = serializers.ChoiceField(choices=WorkflowStatus.values, required=False)
    graph = NameField(required=False)
    version = serializers.IntegerField(min_value=1, required=False)
    node = NameField(required=False)
    attention = serializers.ChoiceField(choices=Attention.values, required=False)
    business_key = StrictCharField(max_length=200, required=False)
    is_paused = serializers.BooleanField(required=False)
    cursor = StrictCharField(required=False)


class WorkflowListApi(APIView):
    """List workflows with filters (GET) or start one (POST)."""

    def get_permissions(self):
        permission = CanStartWorkflows if self.request.method == "POST" else CanViewWorkflows
        return [permission()]

    class StartSerializer(StrictSerializer):
        graph = NameField()
        version = StrictIntegerField(min_value=1, required=False)
        id = serializers.UUIDField(required=False)
        input = serializers.JSONField(required=False, default=dict)
        business_key = StrictCharField(max_length=200, required=False, default="")

    @extend_schema(
        operation_id="workflow_list",
        parameters=[WorkflowFilterSerializer],
        responses={200: WorkflowSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request):
        filters = WorkflowFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)

        workflows = selectors.workflow_list(filters=filters.validated_data)
        paginator = WorkflowPagination()
        page = paginator.paginate_queryset(workflows, request, view=self)
        return paginator.get_paginated_response(WorkflowSerializer(page, many=True).data)

    @extend_schema(
        request=StartSerializer,
        responses={
            200: WorkflowDetailSerializer,
            201: WorkflowDetailSerializer,
            **ERROR_RESPONSES,
        },
    )
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

    @extend_schema(
        operation_id="workflow_retrieve",
        responses={200: WorkflowDetailSerializer, **ERROR_RESPONSES},
    )
    def get(self, request, workflow_id):
        workflow = selectors.workflow_get(workflow_id=workflow_id)
        return Response(workflow_detail(workflow))


class HistoryEntrySerializer(serializers.Serializer):
    transition_id = serializers.IntegerField()
    from_node = serializers.CharField()
    to_node = serializers.CharField()
    label = serializers.CharField()
    actor_type = serializers.CharField()
    actor = serializers.CharField()
    job_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    wall_time_seconds = serializers.FloatField()


class WorkflowHistorySerializer(serializers.Serializer):
    workflow_id = serializers.UUIDField()
    transitions = HistoryEntrySerializer(many=True)
    dot = serializers.CharField()


class WorkflowHistoryApi(APIView):
    """Transitions oldest first with wall time per step, and the graph with the path."""

    permission_classes = [CanViewWorkflows]

    @extend_schema(responses={200: WorkflowHistorySerializer, **ERROR_RESPONSES})
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

    class AdvanceInputSerializer(StrictSerializer):
        transition_id = StrictIntegerField(min_value=0)
        label = StrictCharField(trim_whitespace=False, max_length=100)
        reason = StrictCharField(max_length=2000)

    @extend_schema(
        request=AdvanceInputSerializer, responses={200: WorkflowDetailSerializer, **ERROR_RESPONSES}
    )
    def post(self, request, workflow_id):
        data = self.AdvanceInputSerializer(data=request.data)
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

    class ControlInputSerializer(StrictSerializer):
        reason = StrictCharField(max_length=2000, required=False, default="", allow_blank=True)

    ACTIONS = {
        "cancel": services.workflow_cancel,
        "retry": services.workflow_retry,
        "pause": services.workflow_pause,
        "resume": services.workflow_resume,
    }

    @extend_schema(
        request=ControlInputSerializer, responses={200: WorkflowDetailSerializer, **ERROR_RESPONSES}
    )
    def post(self, request, workflow_id):
        data = self.ControlInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)

        service = self.ACTIONS[self.control_action]
        workflow = service(
            workflow_id=workflow_id,
            username=request.user.get_username(),
            reason=data.validated_data["reason"],
        )
        return Response(workflow_detail(workflow))

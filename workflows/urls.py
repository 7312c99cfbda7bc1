from django.urls import path

from workflows import api

urlpatterns = [
    path("graphs", api.GraphDefinitionListApi.as_view(), name="graph-list"),
    path("graphs/<str:name>", api.GraphDefinitionLatestApi.as_view(), name="graph-latest"),
    path(
        "graphs/<str:name>/<int:version>",
        api.GraphDefinitionDetailApi.as_view(),
        name="graph-detail",
    ),
    path("workflows", api.WorkflowListApi.as_view(), name="workflow-list"),
    path("workflows/<uuid:workflow_id>", api.WorkflowDetailApi.as_view(), name="workflow-detail"),
    path(
        "workflows/<uuid:workflow_id>/history",
        api.WorkflowHistoryApi.as_view(),
        name="workflow-history",
    ),
    path(
        "workflows/<uuid:workflow_id>/advance",
        api.WorkflowAdvanceApi.as_view(),
        name="workflow-advance",
    ),
]

for action in api.WorkflowControlApi.ACTIONS:
    urlpatterns.append(
        path(
            f"workflows/<uuid:workflow_id>/{action}",
            api.WorkflowControlApi.as_view(control_action=action),
            name=f"workflow-{action}",
        )
    )

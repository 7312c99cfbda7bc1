"""The operator console: workflow pages, the attention queue, bulk actions, graphs.

Every change goes through ``workflows.services``; the admin never writes a
status field itself.
"""

from workflows.admin.base import ReadOnlyAdmin
from workflows.admin.graph import GraphDefinitionAdmin
from workflows.admin.workflow import WorkflowAdmin, WorkflowNeedingAttentionAdmin

__all__ = [
    "GraphDefinitionAdmin",
    "ReadOnlyAdmin",
    "WorkflowAdmin",
    "WorkflowNeedingAttentionAdmin",
]

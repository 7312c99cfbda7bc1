from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Graphs, workflows, transitions, the scheduler and the operator admin.

    Depends on ``jobs`` for job rows: advancing a workflow issues and retires
    jobs through ``jobs.services`` in the same transaction.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "workflows"

    def ready(self) -> None:
        # Registers relor_now() on every new SQLite connection.
        from workflows import clock  # noqa: F401

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Jobs and the worker API.

    The API reports results through ``workflows.attempts``, so a completion
    advances its workflow in the same transaction; ``jobs.services`` itself
    changes job rows only.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"

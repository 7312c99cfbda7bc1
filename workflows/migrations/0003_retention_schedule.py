"""Schedule the daily retention clean-up with django-q2."""

from django.db import migrations

TASK = "workflows.tasks.purge_finished_jobs"


def create_schedule(apps, schema_editor) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        func=TASK,
        defaults={"name": "relor-retention", "schedule_type": "D", "repeats": -1},
    )


def delete_schedule(apps, schema_editor) -> None:
    apps.get_model("django_q", "Schedule").objects.filter(func=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0002_relor_now"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]

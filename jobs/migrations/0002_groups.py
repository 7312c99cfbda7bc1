"""Create the ``workers`` and ``operators`` groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_PERMISSIONS = {
    "workers": [("jobs", "work_job")],
    "operators": [
        ("workflows", "view_graphdefinition"),
        ("workflows", "upload_graphdefinition"),
        ("workflows", "view_workflow"),
        ("workflows", "start_workflow"),
        ("workflows", "resolve_workflow"),
        ("workflows", "control_workflow"),
        ("workflows", "view_transition"),
        ("jobs", "view_job"),
    ],
}


def create_groups(apps, schema_editor) -> None:
    # Permissions are normally created after all migrations have run, so
    # create them now for the groups to reference.
    for app_label in ("workflows", "jobs"):
        app_config = apps.get_app_config(app_label)
        # The historical app stub lacks models_module, which create_permissions
        # only checks for being set.
        is_stub = getattr(app_config, "models_module", None) is None
        if is_stub:
            app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        if is_stub:
            app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for app_label, codename in codenames:
            permission = Permission.objects.get(
                content_type__app_label=app_label, codename=codename
            )
            group.permissions.add(permission)


def delete_groups(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=GROUP_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0001_initial"),
        ("workflows", "0002_relor_now"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]

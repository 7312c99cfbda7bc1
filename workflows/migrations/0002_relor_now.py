from django.db import migrations

from workflows.clock import CREATE_POSTGRESQL_FUNCTION, DROP_POSTGRESQL_FUNCTION


def create_clock(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_POSTGRESQL_FUNCTION)


def drop_clock(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_POSTGRESQL_FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("workflows", "0001_initial")]

    operations = [migrations.RunPython(create_clock, drop_clock)]

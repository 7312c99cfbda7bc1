"""Create a worker account and print its API token."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Create a worker user in the 'workers' group (or reuse it) and print its "
        "API token. Worker users can use the job endpoints only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", help="Login name of the worker account.")

    def handle(self, *args, username: str, **options) -> None:
        User = get_user_model()
        group = Group.objects.filter(name="workers").first()
        if group is None:
            raise CommandError("The 'workers' group is missing. Run 'manage.py migrate' first.")

        user, created = User.objects.get_or_create(username=username)
        if user.is_staff or user.is_superuser:
            raise CommandError(f"{username} is a staff account; choose another worker name.")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(group)

        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)

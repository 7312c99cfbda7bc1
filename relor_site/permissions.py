"""DRF permission classes that require one Django permission each."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


def require_permission(codename: str) -> type[BasePermission]:
    """Return a permission class that admits users holding ``codename`` (``app.perm``)."""

    class HasPermission(BasePermission):
        message = f"This action needs the {codename} permission."

        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perm(codename))

    HasPermission.__name__ = f"Has_{codename.replace('.', '_')}"
    return HasPermission

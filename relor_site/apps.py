from django.contrib.admin.apps import AdminConfig


class RelorAdminConfig(AdminConfig):
    """Django's admin, with Relor's operator console as the default site."""

    default_site = "relor_site.admin_site.RelorAdminSite"

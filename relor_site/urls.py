from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from relor_site.api_errors import json_error

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("jobs.urls")),
    path("api/v1/", include("workflows.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(404, "not_found", f"No API endpoint at {request.path}.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return json_error(500, "internal_error", "An unexpected error occurred.")
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)


handler404 = not_found
handler500 = server_error

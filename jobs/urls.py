from django.urls import path

from jobs import api

urlpatterns = [
    path("jobs/claim", api.JobClaimApi.as_view(), name="job-claim"),
    path("jobs/<int:job_id>/complete", api.JobCompleteApi.as_view(), name="job-complete"),
    path("jobs/<int:job_id>/heartbeat", api.JobHeartbeatApi.as_view(), name="job-heartbeat"),
    path("jobs/<int:job_id>/release", api.JobReleaseApi.as_view(), name="job-release"),
]

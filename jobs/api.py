"""Worker API: claim jobs, report results, heartbeat and release."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from jobs import wakeup
from jobs.models import Job
from jobs.services import jobs_claim
from relor_site.api_errors import ERROR_RESPONSES
from relor_site.permissions import require_permission
from relor_site.serializers import (
    NameField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
)
from workflows.attempts import job_complete, job_heartbeat, job_release

logger = logging.getLogger(__name__)

IsWorker = require_permission("jobs.work_job")


class JobClaimApi(APIView):
    """Claim up to ``max_jobs`` pending jobs, waiting up to ``wait`` seconds for one."""

    permission_classes = [IsWorker]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "claim"

    class ClaimInputSerializer(StrictSerializer):
        worker = NameField()
        operations = serializers.ListField(child=NameField(), min_length=1, max_length=100)
        max_jobs = StrictIntegerField(min_value=1, default=1)
        wait = StrictFloatField(min_value=0, default=0)

    class JobSerializer(serializers.ModelSerializer):
        workflow_id = serializers.UUIDField()
        input = serializers.JSONField(source="workflow.input")
        outputs = serializers.JSONField(source="workflow.outputs")

        class Meta:
            model = Job
            fields = [
                "id",
                "workflow_id",
                "node",
                "operation",
                "labels",
                "attempt",
                "transition_id",
                "deadline",
                "timeout_seconds",
                "input",
                "outputs",
            ]

    @extend_schema(
        request=ClaimInputSerializer,
        responses={
            200: inline_serializer("ClaimOutput", {"jobs": JobSerializer(many=True)}),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request):
        data = self.ClaimInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data

        max_jobs = min(params["max_jobs"], settings.RELOR_MAX_CLAIM_JOBS)
        wait_seconds = min(params["wait"], settings.RELOR_MAX_CLAIM_WAIT_SECONDS)
        jobs = self._claim_or_wait(request.user, params, max_jobs, wait_seconds)
        return Response({"jobs": self.JobSerializer(jobs, many=True).data})

    def _claim_or_wait(self, user, params: dict, max_jobs: int, wait_seconds: float):
        operations = params["operations"]
        give_up_at = time.monotonic() + wait_seconds
        marker = wakeup.issued_marker(operations)
        jobs = jobs_claim(
            user=user, worker=params["worker"], operations=operations, max_jobs=max_jobs
        )
        if jobs or wait_seconds <= 0:
            return jobs

        with wakeup.parked():
            while not jobs and time.monotonic() < give_up_at:
                _release_connection()
                wakeup.wait_for_job(operations, marker, give_up_at - time.monotonic())
                marker = wakeup.issued_marker(operations)
                jobs = jobs_claim(
                    user=user, worker=params["worker"], operations=operations, max_jobs=max_jobs
                )
        return jobs


def _release_connection() -> None:
    """Close this thread's connection, so a parked claim keeps none open while it waits."""
    if not connection.in_atomic_block:
        connection.close()


class JobCompleteApi(APIView):
    """Report a job's label and output; the workflow advances in the same transaction."""

    permission_classes = [IsWorker]

    class CompletionInputSerializer(StrictSerializer):
        worker = NameField(required=False)
        label = StrictCharField(trim_whitespace=False, allow_blank=True)
        output = serializers.JSONField(required=False, default=dict)

    @extend_schema(
        request=CompletionInputSerializer,
        responses={
            200: inline_serializer(
                "CompletionOutput",
                {
                    "id": serializers.IntegerField(),
                    "workflow_id": serializers.UUIDField(),
                    "status": serializers.CharField(),
                    "label": serializers.CharField(),
                    "transition_id": serializers.IntegerField(),
                },
            ),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request, job_id: int):
        data = self.CompletionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data

        body = job_complete(
            job_id=job_id,
            user=request.user,
            worker=params.get("worker"),
            label=params["label"],
            output=params["output"],
        )
        return Response(body)


class JobHeartbeatApi(APIView):
    """Prove the worker is alive and move the job's deadline."""

    permission_classes = [IsWorker]

    class HeartbeatInputSerializer(StrictSerializer):
        worker = NameField(required=False)

    @extend_schema(
        request=HeartbeatInputSerializer,
        responses={
            200: inline_serializer(
                "HeartbeatOutput",
                {
                    "id": serializers.IntegerField(),
                    "is_current": serializers.BooleanField(),
                    "deadline": serializers.DateTimeField(),
                },
            ),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request, job_id: int):
        data = self.HeartbeatInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        body = job_heartbeat(
            job_id=job_id, user=request.user, worker=data.validated_data.get("worker")
        )
        return Response(body)


class JobReleaseApi(APIView):
    """Give a job back; a new attempt follows after ``retry_after`` seconds or the backoff."""

    permission_classes = [IsWorker]

    class ReleaseInputSerializer(StrictSerializer):
        worker = NameField(required=False)
        retry_after = StrictFloatField(
            min_value=0, max_value=7 * 24 * 3600, required=False, allow_null=True
        )

    @extend_schema(
        request=ReleaseInputSerializer,
        responses={
            200: inline_serializer(
                "ReleaseOutput",
                {"id": serializers.IntegerField(), "status": serializers.CharField()},
            ),
            **ERROR_RESPONSES,
        },
    )
    def post(self, request, job_id: int):
        data = self.ReleaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        params = data.validated_data

        body = job_release(
            job_id=job_id,
            user=request.user,
            worker=params.get("worker"),
            retry_after_seconds=params.get("retry_after"),
        )
        return Response(body)

"""Background duties: attention notices and retention clean-up, run by django-q2."""

from __future__ import annotations

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.db import transaction
from django_q.models import OrmQ

from jobs.models import Job
from tests.factories import GraphDefinitionFactory
from tests.processes import free_port, manage, start_process, wait_until
from workflows.services import workflow_cancel, workflow_start
from workflows.tasks import notify_attention, purge_finished_jobs

REVIEW_GRAPH = {
    "start": "review",
    "nodes": [{"id": "review", "manual": True}, {"id": "done"}],
    "edges": [{"from": "review", "to": "done", "label": "approve"}],
}


class WebhookReceiver:
    """A local HTTP endpoint that records the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(settings):
    receiver = WebhookReceiver()
    settings.RELOR_ATTENTION_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.close()


@pytest.mark.django_db
def test_manual_node_queues_one_notice_when_configured(webhook):
    GraphDefinitionFactory(name="g", document=REVIEW_GRAPH)

    workflow_start(graph_name="g")

    assert OrmQ.objects.count() == 1


@pytest.mark.django_db
def test_notice_is_rolled_back_with_its_transaction(webhook):
    GraphDefinitionFactory(name="g", document=REVIEW_GRAPH)

    with pytest.raises(RuntimeError), transaction.atomic():
        workflow_start(graph_name="g")
        raise RuntimeError("crash before commit")

    assert OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_no_notice_is_queued_without_recipients(settings):
    settings.RELOR_ATTENTION_WEBHOOK_URL = ""
    settings.RELOR_ATTENTION_EMAILS = []
    GraphDefinitionFactory(name="g", document=REVIEW_GRAPH)

    workflow_start(graph_name="g")

    assert OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_notice_posts_webhook_and_sends_email(webhook, settings):
    settings.RELOR_ATTENTION_EMAILS = ["oncall@example.com"]
    GraphDefinitionFactory(name="g", document=REVIEW_GRAPH)
    workflow, _ = workflow_start(graph_name="g", business_key="order-9")

    notify_attention(str(workflow.pk), "manual")

    assert webhook.bodies[0]["workflow_id"] == str(workflow.pk)
    assert webhook.bodies[0]["node"] == "review"
    assert webhook.bodies[0]["business_key"] == "order-9"
    assert mail.outbox[0].to == ["oncall@example.com"]
    assert str(workflow.pk) in mail.outbox[0].subject


@pytest.mark.django_db
def test_failed_webhook_raises_for_retry(settings):
    settings.RELOR_ATTENTION_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/closed"
    GraphDefinitionFactory(name="g", document=REVIEW_GRAPH)
    workflow, _ = workflow_start(graph_name="g")

    with pytest.raises(OSError):
        notify_attention(str(workflow.pk), "manual")


@pytest.mark.django_db
@pytest.mark.postgresql
def test_purge_deletes_only_old_finished_jobs(db_clock, settings):
    settings.RELOR_RETENTION_DAYS = 30
    GraphDefinitionFactory(name="g1")
    old, _ = workflow_start(graph_name="g1")
    workflow_cancel(workflow_id=old.pk, username="alice")
    db_clock.advance(31 * 24 * 3600)
    recent, _ = workflow_start(graph_name="g1")
    workflow_cancel(workflow_id=recent.pk, username="alice")
    running, _ = workflow_start(graph_name="g1")

    assert purge_finished_jobs() == 1

    assert not Job.objects.filter(workflow=old).exists()
    assert Job.objects.filter(workflow=recent).exists()
    assert Job.objects.filter(workflow=running).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgresql
@pytest.mark.slow
def test_qcluster_process_delivers_notice(tmp_path):
    receiver = WebhookReceiver()
    log_path = tmp_path / "qcluster.log"
    cluster = start_process(
        manage("qcluster"), "qcluster", log_path, RELOR_ATTENTION_WEBHOOK_URL=receiver.url
    )
    try:
        from django.test import override_settings

        with override_settings(RELOR_ATTENTION_WEBHOOK_URL=receiver.url):
            GraphDefinitionFactory(name="g", document=REVIEW_GRAPH)
            workflow, _ = workflow_start(graph_name="g")
        wait_until(lambda: receiver.bodies, 60, "qcluster posts the notice")
    finally:
        cluster.send_signal(signal.SIGTERM)
        cluster.wait(timeout=30)
        receiver.close()

    assert receiver.bodies[0]["workflow_id"] == str(workflow.pk)
    assert b"Traceback" not in log_path.read_bytes()

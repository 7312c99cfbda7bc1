"""The operator console in Chromium: attention queue, resolve, bulk actions, graphs.

``tests/workflows/test_admin.py`` covers the same views through Django's test
client. These tests click through the real pages, run the graph picture's
JavaScript, and save the screenshots that ``docs/operators.md`` shows.
"""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import Page, expect

from jobs.models import Job
from tests.browser import screenshot
from tests.browser.orders import Orders, order_graph_upload, orders_create
from tests.factories import GraphDefinitionFactory, OperatorFactory, UserFactory
from workflows import services
from workflows.models import GraphDefinition, Workflow

CHANGELIST = "/admin/workflows/workflow/"
QUEUE = "/admin/workflows/workflowneedingattention/"

#: A one-node graph whose job times out after one second, so a test can make
#: a pending job overdue without waiting long.
QUICK_GRAPH = {
    "start": "check",
    "nodes": [
        {"id": "check", "operation": "op_check", "timeout": "1s"},
        {"id": "done"},
    ],
    "edges": [{"from": "check", "to": "done", "label": "ok"}],
}


@pytest.fixture
def orders(worker) -> Orders:
    return orders_create(worker)


@pytest.fixture
def olivia():
    return OperatorFactory(username="olivia")


def page_path(workflow: Workflow) -> str:
    return f"/admin/workflows/workflow/{workflow.pk}/change/"


def expect_picture_rendered(page: Page) -> None:
    """Wait until graph.js has replaced the placeholder with Viz.js's SVG."""
    picture = page.locator("#graph-picture")
    expect(picture).to_have_attribute("data-rendered", "true")
    expect(picture.locator("svg")).to_have_count(1)


def table_rows(page: Page, selector: str) -> list[list[str]]:
    """Return the text of every body cell of a table, row by row.

    Waits for the table first, because ``evaluate_all`` does not wait and
    would read an empty list while the browser is still loading the page.
    """
    expect(page.locator(selector)).to_be_visible()
    return page.locator(f"{selector} tbody tr").evaluate_all(
        "rows => rows.map(row => [...row.cells].map(cell => cell.innerText.trim()))"
    )


def select_rows(page: Page, workflows: list[Workflow]) -> None:
    for workflow in workflows:
        page.locator(f'input.action-select[value="{workflow.pk}"]').check()


def run_action(page: Page, description: str) -> None:
    page.locator("select[name=action]").select_option(label=description)
    page.get_by_role("button", name="Go").click()


def confirm_control(page: Page, title: str, reason: str) -> None:
    """Click a control link on the workflow page and confirm it with a reason."""
    page.locator("#controls a", has_text=title).click()
    expect(page.locator("#confirm-form")).to_be_visible()
    page.locator("#id_reason").fill(reason)
    page.get_by_role("button", name=f"Yes, {title.lower()}").click()
    expect(page.locator("ul.messagelist li").first).to_be_visible()


# The index and the attention queue


def test_index_tiles_count_workflows(admin_page, live_server, olivia, orders) -> None:
    page = admin_page(olivia)

    tiles = page.locator("#relor-dashboard .relor-tile")
    expect(tiles.locator(".relor-count")).to_have_text(["5", "2", "1", "1", "3", "0"])
    expect(tiles).to_contain_text(
        [
            "running",
            "completed",
            "failed",
            "cancelled",
            "need attention",
            "waiting for a worker",
        ]
    )
    expect(page.locator("#attention-tile")).to_contain_text("oldest waits")
    screenshot(page, "console-index.png")

    page.locator(".relor-tile", has_text="completed").click()

    expect(page).to_have_url(f"{live_server.url}{CHANGELIST}?status__exact=completed")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("order-1004")
    expect(page.locator("#result_list")).to_contain_text("order-1005")


def test_index_hides_counts_without_view_permission(admin_page) -> None:
    staff = UserFactory(username="sam", is_staff=True)

    page = admin_page(staff)

    expect(page.locator("#content-main")).to_contain_text(
        "You don’t have permission to view or edit anything."
    )
    expect(page.locator("#relor-dashboard")).to_have_count(0)


def test_waiting_tile_leaves_out_paused(
    admin_page, live_server, olivia, worker
) -> None:
    GraphDefinitionFactory(name="quick", document=QUICK_GRAPH)
    waiting, _ = services.workflow_start(graph_name="quick", business_key="waiting")
    paused, _ = services.workflow_start(graph_name="quick", business_key="paused")
    services.workflow_pause(workflow_id=paused.pk, username="olivia", reason="incident")
    # Let both pending jobs pass their one-second timeout.
    time.sleep(1.5)

    page = admin_page(olivia)
    waiting_tile = page.locator(".relor-tile", has_text="waiting for a worker")
    expect(waiting_tile.locator(".relor-count")).to_have_text("1")
    waiting_tile.click()

    expect(page).to_have_url(f"{live_server.url}{CHANGELIST}?waiting_for_worker=yes")
    rows = table_rows(page, "#result_list")
    assert [row[2] for row in rows] == ["waiting"]
    # A paused workflow's pending job is not handed out, so no worker could take it.
    assert worker.claim_jobs("op_check", max_jobs=10)[0]["workflow_id"] == str(
        waiting.pk
    )


def test_resolve_from_attention_queue(admin_page, live_server, olivia, orders) -> None:
    page = admin_page(olivia)

    page.locator("#attention-tile").click()

    expect(page).to_have_url(f"{live_server.url}{QUEUE}")
    queue = table_rows(page, "#result_list")
    # Columns: checkbox, workflow, graph, node, attention, attempt, waiting, business key.
    assert [row[2] for row in queue] == ["order-1001", "order-1002", "order-1003"]
    assert {row[4] for row in queue} == {"fraud_review"}
    assert {row[5] for row in queue} == {"manual node"}
    screenshot(page, "console-attention-queue.png")

    first = orders.get("order-1001")
    page.get_by_role("link", name=str(first.pk)[:8]).click()

    expect(page).to_have_url(f"{live_server.url}{page_path(first)}")
    expect(page.locator("#current-node")).to_have_text("fraud_review")
    expect(page.locator("#workflow-summary")).to_contain_text(
        "needs attention: manual node"
    )
    expect(page.locator("#transition-id")).to_have_text("2")
    expect(page.locator("#workflow-outputs")).to_contain_text(
        "card country differs from shipping country"
    )
    # No label is preselected, so the operator has to choose one.
    expect(page.locator("#id_label")).to_have_value("")
    expect_picture_rendered(page)
    screenshot(page, "console-workflow.png")

    page.locator("#id_label").select_option("approve")
    page.locator("#id_reason").fill("Card holder confirmed the order by phone.")
    page.get_by_role("button", name="Resolve").click()

    expect(page.locator("ul.messagelist li.success")).to_have_text(
        "Resolved with 'approve': the workflow is now running at node 'charge_payment'."
    )
    expect(page.locator("#current-node")).to_have_text("charge_payment")
    history = table_rows(page, "#history")
    assert len(history) == 3
    assert history[2][:6] == [
        "3",
        "fraud_review",
        "charge_payment",
        "approve",
        "operator: olivia",
        "Card holder confirmed the order by phone.",
    ]
    transition = orders.get("order-1001").transitions.get(number=3)
    assert transition.actor_type == "operator"
    assert transition.actor == "olivia"

    page.goto("/admin/")
    expect(page.locator("#attention-tile .relor-count")).to_have_text("2")


def test_resolve_after_worker_moved_applies_nothing(admin_page, olivia, worker) -> None:
    graph = order_graph_upload()
    workflow, _ = services.workflow_start(
        graph_name=graph.name, business_key="order-2001"
    )
    [job] = worker.claim_jobs("inventory.reserve")
    page = admin_page(olivia)
    page.goto(page_path(workflow))
    expect(page.locator("#current-node")).to_have_text("reserve_stock")
    expect(page.locator("#transition-id")).to_have_text("0")
    expect(page.locator("#resolve")).to_contain_text(
        f"A worker is running job {job['id']} for this step."
    )
    page.locator("#id_label").select_option("out_of_stock")
    page.locator("#id_reason").fill("Warehouse says the last unit is damaged.")

    # The worker finishes first, while the operator's page still shows transition 0.
    assert worker.complete(job["id"], "reserved").status_code == 200
    page.get_by_role("button", name="Resolve").click()

    error = page.locator("ul.messagelist li.error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("by worker w1")
    assert error.inner_text().startswith("Nothing was applied.")
    expect(page.locator("ul.messagelist li.success")).to_have_count(0)
    expect(page.locator("#current-node")).to_have_text("screen_fraud")
    expect(page.locator("#transition-id")).to_have_text("1")

    workflow.refresh_from_db()
    [transition] = workflow.transitions.all()
    assert workflow.status == "running"
    assert workflow.current_node == "screen_fraud"
    assert transition.actor_type == "worker"
    assert transition.actor == "w1"
    assert transition.label == "reserved"


# Control actions on one workflow


def test_pause_retry_and_cancel_from_page(
    admin_page, live_server, olivia, orders
) -> None:
    workflow = orders.get("order-1009")
    [held] = Job.objects.filter(workflow=workflow, status="claimed")
    page = admin_page(olivia)
    page.goto(page_path(workflow))
    controls = page.locator("#controls a")
    expect(controls).to_have_text(["Retry now", "Pause", "Cancel"])

    page.locator("#controls a", has_text="Pause").click()
    expect(page.locator("#content-main .help")).to_contain_text(
        "Stops handing out and issuing jobs for this workflow."
    )
    page.locator("#id_reason").fill("Warehouse system maintenance.")
    page.get_by_role("button", name="Yes, pause").click()

    expect(page).to_have_url(f"{live_server.url}{page_path(workflow)}")
    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"Pause: done for workflow {workflow.pk}."
    )
    expect(page.locator("#workflow-summary .relor-badge")).to_have_text("Paused")
    expect(controls).to_have_text(["Retry now", "Resume", "Cancel"])

    confirm_control(page, "Retry now", "Worker w1 crashed while holding the job.")

    expect(page.locator("ul.messagelist li.success")).to_have_text(
        f"Retry now: done for workflow {workflow.pk}."
    )
    [issued] = Job.objects.filter(workflow=workflow, status="pending")
    jobs = [(row[0], row[2], row[3]) for row in table_rows(page, "#jobs")]
    assert jobs == [(str(issued.pk), "1", "pending"), (str(held.pk), "1", "stale")]
    # Retrying also lifts the pause, because the new attempt is issued at once.
    expect(page.locator("#workflow-summary .relor-badge")).to_have_text("Running")

    confirm_control(page, "Cancel", "Customer withdrew the order.")

    expect(page.locator("#workflow-summary .relor-badge")).to_have_text("Cancelled")
    expect(page.locator("#controls")).to_have_count(0)
    expect(page.locator("#resolve-form")).to_have_count(0)
    statuses = Job.objects.filter(workflow=workflow).values_list("status", flat=True)
    assert set(statuses) == {"stale"}
    actions = [row[1:] for row in table_rows(page, "#operator-actions")]
    assert actions == [
        ["olivia", "Paused: Warehouse system maintenance."],
        ["olivia", "Retried: Worker w1 crashed while holding the job."],
        ["olivia", "Cancelled: Customer withdrew the order."],
    ]


def test_pause_lets_claimed_job_finish(admin_page, olivia, orders, worker) -> None:
    workflow = orders.get("order-1006")
    [held] = Job.objects.filter(workflow=workflow, status="claimed")
    page = admin_page(olivia)
    page.goto(page_path(workflow))
    confirm_control(page, "Pause", "Payment provider incident.")

    # The worker claimed the charge job before the pause, and its result still counts.
    assert worker.complete(held.pk, "paid").status_code == 200
    page.reload()

    expect(page.locator("#current-node")).to_have_text("dispatch_shipment")
    expect(page.locator("#workflow-summary .relor-badge")).to_have_text("Paused")
    assert not Job.objects.filter(workflow=workflow, node="dispatch_shipment").exists()
    assert worker.claim_jobs("shipping.dispatch") == []

    confirm_control(page, "Resume", "Incident over.")

    expect(page.locator("#workflow-summary .relor-badge")).to_have_text("Running")
    [issued] = Job.objects.filter(workflow=workflow, node="dispatch_shipment")
    assert issued.status == "pending"


# Bulk actions


def test_bulk_cancel_three_workflows(admin_page, olivia, orders) -> None:
    running = [orders.get(key) for key in ("order-1001", "order-1006", "order-1009")]
    delivered = orders.get("order-1004")
    page = admin_page(olivia)
    page.goto(CHANGELIST)

    select_rows(page, [*running, delivered])
    run_action(page, "Cancel selected workflows")

    eligibility = {row[0]: row[4] for row in table_rows(page, "#bulk-eligibility")}
    assert eligibility == {
        **{str(workflow.pk): "yes" for workflow in running},
        str(delivered.pk): "no: it has finished (completed)",
    }
    page.locator("#id_reason").fill("Duplicate orders from a checkout retry.")
    page.get_by_role("button", name="Yes, apply to the eligible workflows").click()

    expect(page.locator("#bulk-counts")).to_have_text(
        "Cancel: 3 done, 1 skipped, 0 failed."
    )
    outcomes = {row[0]: row[1:] for row in table_rows(page, "#bulk-outcomes")}
    assert outcomes == {
        **{str(workflow.pk): ["done", ""] for workflow in running},
        str(delivered.pk): ["skipped", "it has finished (completed)"],
    }
    screenshot(page, "console-bulk-result.png")

    for workflow in running:
        assert Workflow.objects.get(pk=workflow.pk).status == "cancelled"
    live_jobs = Job.objects.filter(
        workflow__in=running, status__in=["pending", "claimed"]
    )
    assert list(live_jobs) == []
    assert Workflow.objects.get(pk=delivered.pk).status == "completed"


def test_bulk_resolve_with_one_label(admin_page, olivia, orders) -> None:
    reviews = [orders.get(key) for key in ("order-1001", "order-1002", "order-1003")]
    charging = orders.get("order-1006")
    page = admin_page(olivia)
    page.goto(CHANGELIST)

    select_rows(page, [*reviews, charging])
    run_action(page, "Resolve selected workflows with one label")
    reason = page.locator("input[name=reason]")
    # The reason field is required in HTML, so remove that to reach the server's check.
    reason.evaluate("field => field.removeAttribute('required')")
    reason.fill("   ")
    page.get_by_role("button", name="Check eligibility").click()

    expect(page.locator("ul.messagelist li.error")).to_have_text(
        "Give a reason for the decision."
    )
    page.locator("select[name=label]").select_option("reject")
    reason.fill("Stolen card series reported by the bank.")
    page.get_by_role("button", name="Check eligibility").click()

    eligibility = {row[0]: row[4] for row in table_rows(page, "#bulk-eligibility")}
    assert eligibility == {
        **{str(workflow.pk): "yes" for workflow in reviews},
        str(charging.pk): "no: node 'charge_payment' does not offer 'reject'",
    }
    page.get_by_role("button", name="Yes, apply to the eligible workflows").click()

    expect(page.locator("#bulk-counts")).to_have_text(
        "Resolve with 'reject': 3 done, 1 skipped, 0 failed."
    )
    for workflow in reviews:
        workflow.refresh_from_db()
        last = workflow.transitions.order_by("-number").first()
        assert workflow.status == "failed"
        assert workflow.current_node == "fraud_rejected"
        assert last.actor == "olivia"
        assert last.reason == "Stolen card series reported by the bank."
    assert orders.get("order-1006").transition_id == charging.transition_id


def test_queue_bulk_reports_moved_row(admin_page, olivia, orders) -> None:
    reviews = [orders.get(key) for key in ("order-1001", "order-1002", "order-1003")]
    page = admin_page(olivia)
    page.goto(QUEUE)
    page.locator("#action-toggle").check()
    run_action(page, "Resolve selected workflows with one label")
    page.locator("select[name=label]").select_option("approve")
    page.locator("input[name=reason]").fill("Card holders confirmed by phone.")
    page.get_by_role("button", name="Check eligibility").click()
    expect(page.locator("#bulk-eligibility tbody tr.eligible")).to_have_count(3)

    # Meanwhile another operator rejects order-1002, which takes it out of the queue.
    moved = reviews[1]
    services.workflow_advance(
        workflow_id=moved.pk,
        transition_id=moved.transition_id,
        label="reject",
        reason="Stolen card.",
        username="bob",
    )
    page.get_by_role("button", name="Yes, apply to the eligible workflows").click()

    expect(page.locator("#bulk-counts")).to_have_text(
        "Resolve with 'approve': 2 done, 1 skipped, 0 failed."
    )
    outcomes = {row[0]: row[1:] for row in table_rows(page, "#bulk-outcomes")}
    assert outcomes == {
        str(reviews[0].pk): ["done", ""],
        str(moved.pk): ["skipped", "it has finished (failed)"],
        str(reviews[2].pk): ["done", ""],
    }
    assert orders.get("order-1002").transitions.count() == 3


# Permissions and the workflow list


def test_read_only_staff_sees_no_actions(admin_page, orders) -> None:
    viewer = UserFactory(username="victor", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_workflow"),
        Permission.objects.get(codename="view_graphdefinition"),
    )
    workflow = orders.get("order-1001")
    page = admin_page(viewer)

    page.goto(page_path(workflow))

    expect(page.locator("#current-node")).to_have_text("fraud_review")
    expect_picture_rendered(page)
    expect(page.locator("#resolve-form")).to_have_count(0)
    expect(page.locator("#controls")).to_have_count(0)

    page.goto(CHANGELIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(9)
    expect(page.locator("select[name=action]")).to_have_count(0)

    page.goto("/admin/workflows/graphdefinition/")
    expect(page.locator("#result_list")).to_contain_text("order_fulfilment")
    expect(page.get_by_role("link", name="Add graph definition")).to_have_count(0)


def test_workflow_list_search_and_filters(admin_page, olivia, orders) -> None:
    page = admin_page(olivia)
    page.goto(CHANGELIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(9)

    # A business key matches in part, so this finds order-1001 to order-1009.
    page.locator("#searchbar").fill("order-100")
    page.locator("#searchbar").press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=order-100$"))
    expect(page.locator("#result_list tbody tr")).to_have_count(9)

    page.locator("#searchbar").fill("order-1006")
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text("charge_payment")

    page.locator("#searchbar").fill(str(orders.get("order-1007").pk))
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text("out_of_stock")

    page.goto(CHANGELIST)
    filters = page.locator("#changelist-filter")
    filters.get_by_role("link", name="fraud_review").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    filters.get_by_role("link", name="Yes").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(0)


# Graph definitions


def test_upload_invalid_graph_shows_error(admin_page, live_server, olivia) -> None:
    page = admin_page(olivia)
    page.goto("/admin/workflows/graphdefinition/")
    page.get_by_role("link", name="Add graph definition").click()
    expect(page.locator("#graph-upload-form")).to_be_visible()

    page.locator("#id_name").fill("returns")
    page.locator("#id_document").fill(
        '{"start": "inspect", "nodes": [{"id": "inspect", "operation": "returns.inspect"},'
        ' {"id": "restocked"}], "edges": [{"from": "inspect", "to": "restock",'
        ' "label": "ok"}]}'
    )
    page.get_by_role("button", name="Upload").click()

    expect(page).to_have_url(f"{live_server.url}/admin/workflows/graphdefinition/add/")
    error = page.locator("#graph-upload-form .errorlist")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("target node 'restock' is not defined")
    expect(page.locator("#id_name")).to_have_value("returns")
    screenshot(page, "console-upload-error.png")
    assert GraphDefinition.objects.count() == 0


def test_heatmap_counts_running_workflows(
    admin_page, live_server, olivia, orders
) -> None:
    page = admin_page(olivia)
    page.goto("/admin/workflows/graphdefinition/")
    page.get_by_role("link", name="order_fulfilment").first.click()

    expect_picture_rendered(page)
    expect(page.locator("#graph-nodes tbody tr")).to_have_count(15)
    expect(page.locator("#graph-edges tbody tr")).to_have_count(20)
    page.get_by_role("link", name="Heatmap of running workflows").click()

    heatmap_path = f"/admin/workflows/graphdefinition/{orders.graph.pk}/heatmap/"
    expect(page).to_have_url(f"{live_server.url}{heatmap_path}")
    expect_picture_rendered(page)
    counts = {node: int(count) for node, count in table_rows(page, "#heatmap")}
    assert {node: count for node, count in counts.items() if count} == {
        "reserve_stock": 1,
        "fraud_review": 3,
        "charge_payment": 1,
    }
    assert len(counts) == 15
    screenshot(page, "console-heatmap.png")

    page.locator("#heatmap").get_by_role("link", name="fraud_review").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(3)

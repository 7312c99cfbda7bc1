"""A small order-fulfilment data set for the operator-console browser tests.

It uploads ``examples/graphs/order_fulfilment.json`` and starts nine orders,
which a worker then moves through the graph over the job API, as the example
worker would. The result has workflows waiting for fraud review, delivered,
out of stock, cancelled, and held by the worker at an automatic node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.factories import GraphDefinitionFactory
from workflows import services
from workflows.models import GraphDefinition, Workflow

ORDER_GRAPH_PATH = (
    Path(__file__).resolve().parents[2]
    / "examples"
    / "graphs"
    / "order_fulfilment.json"
)

#: Operation of each automatic node that ORDER_PATHS passes through.
OPERATIONS = {
    "reserve_stock": "inventory.reserve",
    "screen_fraud": "fraud.screen",
    "charge_payment": "payments.charge",
    "dispatch_shipment": "shipping.dispatch",
}

#: Labels the worker reports for each order, one per automatic node. An order
#: whose labels run out keeps its last job claimed by the worker.
ORDER_PATHS = {
    "order-1001": ["reserved", "suspicious"],
    "order-1002": ["reserved", "suspicious"],
    "order-1003": ["reserved", "suspicious"],
    "order-1004": ["reserved", "clear", "paid", "shipped"],
    "order-1005": ["reserved", "clear", "paid", "shipped"],
    "order-1006": ["reserved", "clear"],
    "order-1007": ["out_of_stock"],
    "order-1008": [],
    "order-1009": [],
}

#: Output the worker reports with each label. Labels not listed here report ``{}``.
OUTPUTS = {
    "reserved": {"warehouse": "north", "units": 1},
    "suspicious": {"score": 0.91, "rule": "card country differs from shipping country"},
    "clear": {"score": 0.04},
    "paid": {"charge_id": "ch_4200"},
    "shipped": {"carrier": "dhl", "tracking": "JD0142"},
}

#: The order an operator cancels before any worker touches it.
CANCELLED_ORDER = "order-1008"

#: Where each order ends up: (status, node).
EXPECTED_POSITIONS = {
    "order-1001": ("running", "fraud_review"),
    "order-1002": ("running", "fraud_review"),
    "order-1003": ("running", "fraud_review"),
    "order-1004": ("completed", "delivered"),
    "order-1005": ("completed", "delivered"),
    "order-1006": ("running", "charge_payment"),
    "order-1007": ("failed", "out_of_stock"),
    "order-1008": ("cancelled", "reserve_stock"),
    "order-1009": ("running", "reserve_stock"),
}


@dataclass
class Orders:
    graph: GraphDefinition
    workflows: dict[str, Workflow]

    def get(self, business_key: str) -> Workflow:
        """Load the order's workflow afresh from the database."""
        return Workflow.objects.select_related("graph").get(
            pk=self.workflows[business_key].pk
        )


def order_graph_upload() -> GraphDefinition:
    document = json.loads(ORDER_GRAPH_PATH.read_text())
    return GraphDefinitionFactory(name=document["name"], document=document)


def orders_create(worker) -> Orders:
    """Upload the order graph, start the orders and move them along ORDER_PATHS.

    ``worker`` is a ``tests.conftest.WorkerClient``. Every claim takes all
    pending jobs of one operation, so an order with no label left at that step
    keeps its job claimed.
    """
    graph = order_graph_upload()
    workflows = {}
    for business_key in ORDER_PATHS:
        workflow, _ = services.workflow_start(
            graph_name=graph.name,
            business_key=business_key,
            input={"order": business_key, "amount_cents": 4200, "currency": "EUR"},
        )
        workflows[business_key] = workflow
    services.workflow_cancel(
        workflow_id=workflows[CANCELLED_ORDER].pk,
        username="olivia",
        reason="customer withdrew the order",
    )

    key_of = {str(workflow.pk): key for key, workflow in workflows.items()}
    steps = max(len(labels) for labels in ORDER_PATHS.values())
    for step in range(steps):
        operations = {
            OPERATIONS[Workflow.objects.get(pk=workflows[key].pk).current_node]
            for key, labels in ORDER_PATHS.items()
            if step < len(labels)
        }
        for operation in sorted(operations):
            for job in worker.claim_jobs(operation, max_jobs=100):
                labels = ORDER_PATHS[key_of[job["workflow_id"]]]
                if step < len(labels):
                    label = labels[step]
                    response = worker.complete(job["id"], label, OUTPUTS.get(label))
                    assert response.status_code == 200, response.content

    orders = Orders(graph=graph, workflows=workflows)
    positions = {
        key: (orders.get(key).status, orders.get(key).current_node)
        for key in ORDER_PATHS
    }
    assert positions == EXPECTED_POSITIONS
    return orders

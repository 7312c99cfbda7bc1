"""factory-boy factories for users, graph definitions and workflows."""

from __future__ import annotations

import importlib

import factory
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from workflows.definitions import graph_definition_upload
from workflows.models import GraphDefinition, Workflow
from workflows.services import workflow_start

#: A linear graph: a -> b -> end, with operations op_a and op_b.
LINEAR_GRAPH = {
    "start": "a",
    "default_timeout": "60s",
    "nodes": [
        {"id": "a", "operation": "op_a"},
        {"id": "b", "operation": "op_b"},
        {"id": "end"},
    ],
    "edges": [
        {"from": "a", "to": "b", "label": "ok"},
        {"from": "b", "to": "end", "label": "ok"},
    ],
}


def group_named(name: str) -> Group:
    """Return a group made by the groups migration, recreating it after a flush.

    Transactional tests empty every table between tests, data migrations'
    rows included.
    """
    group = Group.objects.filter(name=name).first()
    if group is None:
        migration = importlib.import_module("jobs.migrations.0002_groups")
        migration.create_groups(apps, None)
        group = Group.objects.get(name=name)
    return group


#: A step that may escalate to a manual review, whose labels end, fail or loop back.
REVIEW_GRAPH = {
    "start": "a",
    "default_timeout": "60s",
    "nodes": [
        {"id": "a", "operation": "op_a"},
        {"id": "review", "manual": True},
        {"id": "done"},
        {"id": "rejected", "outcome": "failed"},
    ],
    "edges": [
        {"from": "a", "to": "done", "label": "ok"},
        {"from": "a", "to": "review", "label": "escalate"},
        {"from": "review", "to": "done", "label": "approve"},
        {"from": "review", "to": "rejected", "label": "reject"},
        {"from": "review", "to": "a", "label": "recheck"},
    ],
}


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda number: f"user{number}")
    password = factory.django.Password("correct horse battery staple")


class WorkerFactory(UserFactory):
    """A worker account in the ``workers`` group, with an API token."""

    class Meta:
        skip_postgeneration_save = True

    username = factory.Sequence(lambda number: f"worker{number}")

    @factory.post_generation
    def groups(user, create, extracted, **kwargs):
        if create:
            user.groups.add(group_named("workers"))
            Token.objects.get_or_create(user=user)


class OperatorFactory(UserFactory):
    """A staff account in the ``operators`` group, with an API token."""

    class Meta:
        skip_postgeneration_save = True

    username = factory.Sequence(lambda number: f"operator{number}")
    is_staff = True

    @factory.post_generation
    def groups(user, create, extracted, **kwargs):
        if create:
            user.groups.add(group_named("operators"))
            Token.objects.get_or_create(user=user)


class GraphDefinitionFactory(factory.Factory):
    """Upload a graph through the service, as a client would."""

    class Meta:
        model = GraphDefinition

    name = factory.Sequence(lambda number: f"graph{number}")
    document = factory.LazyFunction(lambda: LINEAR_GRAPH)

    @classmethod
    def _create(cls, model_class, name: str, document: dict) -> GraphDefinition:
        definition, _ = graph_definition_upload(name=name, document=document)
        return definition

    _build = _create


class WorkflowFactory(factory.Factory):
    """Start a workflow through the service, so its first job is issued."""

    class Meta:
        model = Workflow

    graph = factory.SubFactory(GraphDefinitionFactory)
    input = factory.LazyFunction(dict)
    business_key = ""

    @classmethod
    def _create(cls, model_class, graph: GraphDefinition, **kwargs) -> Workflow:
        workflow, _ = workflow_start(graph_name=graph.name, version=graph.version, **kwargs)
        return workflow

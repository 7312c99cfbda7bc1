"""Graph definition services: upload new versions and look up parsed graphs."""

from __future__ import annotations

import hashlib
import json
import logging

from django.conf import settings
from django.db import IntegrityError, transaction

from workflows.clock import db_now
from workflows.exceptions import InvalidInput, NotFound
from workflows.graphs import Graph, GraphError, parse_graph
from workflows.models import GraphDefinition

logger = logging.getLogger(__name__)


def graph_definition_upload(
    *, name: object, document: object, created_by: str = ""
) -> tuple[GraphDefinition, bool]:
    """Store ``document`` as the next version of graph ``name``.

    Returns the definition and whether it was created: an upload identical to
    an existing version returns that version instead.
    """
    name = _validate_graph_name(name)
    try:
        graph = parse_graph(document, max_name_length=settings.RELOR_MAX_NAME_LENGTH)
    except GraphError as error:
        detail = str(error) if error.location == "graph" else f"graph: {error}"
        raise InvalidInput(detail, code="invalid_graph") from error

    spec = graph.to_spec()
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    # Two uploads at once may pick the same version number; the unique
    # constraint rejects the second, which then retries with a fresh read.
    for _ in range(5):
        try:
            return _store_version(name, spec, digest, created_by)
        except IntegrityError:
            logger.warning(
                "Version race while uploading graph %s, retrying",
                name,
                extra={"action": "graph_upload_retry", "graph": name},
            )
    raise InvalidInput(f"name: could not store a new version of {name!r}, retry.")


def _store_version(
    name: str, spec: dict, digest: str, created_by: str
) -> tuple[GraphDefinition, bool]:
    with transaction.atomic():
        existing = GraphDefinition.objects.filter(name=name, digest=digest).first()
        if existing is not None:
            return existing, False

        latest = GraphDefinition.objects.filter(name=name).order_by("-version").first()
        definition = GraphDefinition.objects.create(
            name=name,
            version=(latest.version + 1) if latest else 1,
            spec=spec,
            digest=digest,
            created_at=db_now(),
            created_by=created_by,
        )

    logger.info(
        "Stored graph %s version %s",
        name,
        definition.version,
        extra={"action": "graph_uploaded", "graph": name, "version": definition.version},
    )
    return definition, True


def _validate_graph_name(name: object) -> str:
    limit = settings.RELOR_MAX_NAME_LENGTH
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name: a graph name is required, for example \"orders\".")
    if name != name.strip() or len(name) > limit or not name.isprintable() or "/" in name:
        raise InvalidInput(
            f"name: {name!r} must be 1 to {limit} printable characters without "
            "a slash and without leading or trailing spaces."
        )
    return name


def graph_definition_get(*, name: str, version: int | None = None) -> GraphDefinition:
    """Return version ``version`` of graph ``name``, or its latest version."""
    definitions = GraphDefinition.objects.filter(name=name)
    if version is not None:
        definitions = definitions.filter(version=version)

    definition = definitions.order_by("-version").first()
    if definition is None:
        suffix = f" version {version}" if version is not None else ""
        raise NotFound(f"Graph {name!r}{suffix} does not exist. Upload it first.")
    return definition


def graph_of(definition: GraphDefinition) -> Graph:
    """Return the parsed graph of a stored definition."""
    key = (definition.pk, definition.digest)
    graph = _parsed_graphs.get(key)
    if graph is None:
        # Stored specs were validated on upload, so today's name limit must
        # not reject a version stored under a larger one.
        graph = parse_graph(definition.spec, max_name_length=10_000)
        _parsed_graphs[key] = graph
    return graph


# Versions are immutable, so a parsed graph stays valid for the process's life.
_parsed_graphs: dict[tuple[int, str], Graph] = {}

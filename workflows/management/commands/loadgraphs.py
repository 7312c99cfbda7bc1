"""Upload graph definitions from JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from workflows.definitions import graph_definition_upload
from workflows.exceptions import RelorError


class Command(BaseCommand):
    help = (
        "Upload graph definitions from JSON files. The graph name is the file's "
        '"name" key, or the file name without .json.'
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", help="JSON files or folders of them.")

    def handle(self, *args, paths: list[str], **options) -> None:
        for path in _json_files(paths):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise CommandError(f"{path}: cannot read JSON: {error}") from error

            name = document.get("name", path.stem) if isinstance(document, dict) else path.stem
            try:
                definition, created = graph_definition_upload(
                    name=name, document=document, created_by="loadgraphs"
                )
            except RelorError as error:
                raise CommandError(f"{path}: {error.detail}") from error

            verb = "Stored" if created else "Unchanged"
            self.stdout.write(f"{verb}: {definition} from {path}")


def _json_files(paths: list[str]) -> list[Path]:
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{path} does not exist.")
    return files

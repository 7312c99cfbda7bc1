"""Strict request serializers: exact JSON types, no unknown fields."""

from __future__ import annotations

import unicodedata

from rest_framework import serializers
from rest_framework.fields import empty


class StrictSerializer(serializers.Serializer):
    """A request body serializer that rejects unknown fields and non-object bodies.

    A misspelt field (``graph_version`` for ``version``) would otherwise be
    ignored silently and the request would do something else than meant.
    """

    def run_validation(self, data=empty):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["The request body must be a JSON object."]}
            )

        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            known = ", ".join(self.fields)
            raise serializers.ValidationError(
                {unknown[0]: [f"Unknown field. The fields of this request are: {known}."]}
            )
        return super().run_validation(data)


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string, not a number coerced to one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class NameField(StrictCharField):
    """A worker, operation or label name: compared exactly, never trimmed or normalised."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 100)
        super().__init__(trim_whitespace=False, min_length=1, **kwargs)

    def to_internal_value(self, data):
        name = super().to_internal_value(data)
        if name != name.strip():
            raise serializers.ValidationError("Remove the leading or trailing whitespace.")
        if any(unicodedata.category(character) == "Cc" for character in name):
            raise serializers.ValidationError("Control characters are not allowed.")
        return name


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON number, not a string or a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A number that must arrive as a JSON number, not a string or a boolean."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)

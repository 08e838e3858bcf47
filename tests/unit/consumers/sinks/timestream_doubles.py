"""Timestream write clients for unit tests that validate every call as botocore does.

botocore checks a request against the service model before sending it (lengths at least one,
required members, types) and refuses the whole call with ``ParamValidationError``; the doubles
run that same validation, then keep the records they accepted.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

_MODEL = botocore.session.get_session().get_service_model("timestream-write")


class ValidatingTimestream:
    """Accepts every call botocore would send; keeps the records of each."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for call in self.calls for record in call]

    async def write_records(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, _MODEL.operation_model("WriteRecords").input_shape)
        self.calls.append(list(params["Records"]))
        return {}


class UpsertingTimestream(ValidatingTimestream):
    """Keeps one value per point and answers as Timestream documents its upserts.

    A point is its dimensions, measure name and time.  A record with a higher ``Version``
    replaces the point's values; the same values again are accepted whatever the version; a
    record with *different* values at a version not above the held one is rejected alone, in
    ``RejectedRecords`` with the held version as ``ExistingVersion``, and the others of the
    call are written.
    """

    def __init__(self) -> None:
        super().__init__()
        self.points: dict[str, tuple[str, int]] = {}

    def values(self) -> dict[str, Any]:
        """The values each point holds, decoded."""
        return {point: json.loads(values) for point, (values, _) in self.points.items()}

    async def write_records(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, _MODEL.operation_model("WriteRecords").input_shape)
        common = params.get("CommonAttributes", {})
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for index, record in enumerate(params["Records"]):
            merged = {**common, **record}
            dimensions = sorted((d["Name"], d["Value"]) for d in merged.get("Dimensions", []))
            point = json.dumps([dimensions, merged["MeasureName"], merged["Time"]])
            values = json.dumps(merged.get("MeasureValues", merged.get("MeasureValue")), sort_keys=True)
            version = int(merged.get("Version", 1))
            held = self.points.get(point)
            if held is not None and held[0] != values and version <= held[1]:
                reason = "A record already exists with the same time, dimensions, measure name and version"
                rejected.append({"RecordIndex": index, "Reason": reason, "ExistingVersion": held[1]})
                continue
            if held is None or version > held[1]:
                self.points[point] = (values, version)
            accepted.append(record)
        self.calls.append(accepted)
        if rejected:
            error = {"Code": "RejectedRecordsException", "Message": "One or more records have been rejected."}
            raise ClientError({"Error": error, "RejectedRecords": rejected}, "WriteRecords")  # type: ignore[typeddict-unknown-key]
        return {}

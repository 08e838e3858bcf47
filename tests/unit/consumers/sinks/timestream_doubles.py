"""A Timestream write client for unit tests that validates every call as botocore does.

botocore checks a request against the service model before sending it (lengths at least one,
required members, types) and refuses the whole call with ``ParamValidationError``; the double
runs that same validation, then keeps the records it accepted.
"""

from __future__ import annotations

from typing import Any

import botocore.session
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

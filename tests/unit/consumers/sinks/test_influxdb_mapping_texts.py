"""The mapping's own texts (measurement, tag keys, field keys) are checked when the sink is
built: one InfluxDB cannot write refuses the configuration, instead of dead-lettering every
record with a reason about its payload."""

from __future__ import annotations

import pytest

from consumers.sinks.influxdb import InfluxDBSink
from consumers.sinks.mapping import FieldMapping
from shardline.errors import ConfigurationError


@pytest.mark.parametrize(
    ("mapping", "fault"),
    [
        (FieldMapping(measure_name="metrics-\ud800"), "no UTF-8 form"),
        (FieldMapping(measure_name="a\nb"), "line break"),
        (FieldMapping(dimensions=("dev\ud800",)), "no UTF-8 form"),
        (FieldMapping(dimensions=("time",)), "reserves"),
        (FieldMapping(measures=("temp\\",)), "backslash"),
    ],
)
def test_a_mapping_influxdb_cannot_write_is_a_configuration_error(mapping: FieldMapping, fault: str) -> None:
    with pytest.raises(ConfigurationError, match=fault):
        InfluxDBSink("http://127.0.0.1:8086", database="db", mapping=mapping)


def test_a_writable_mapping_builds() -> None:
    mapping = FieldMapping(dimensions=("device", "site id"), measures=("temp",), measure_name="iot,readings")
    assert InfluxDBSink("http://127.0.0.1:8086", database="db", mapping=mapping).mapping is mapping

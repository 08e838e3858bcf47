"""The KPL ``AggregatedRecord`` protobuf schema, built at import time without protoc.

This is the schema of the KPL's ``messages.proto`` (proto2)::

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Tag    { required string key = 1; optional string value = 2; }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;
    }

It lives in a private descriptor pool so it never clashes with another copy of the same
schema (aws-kinesis-agg registers ``aws.kinesis.protobuf`` in the default pool).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["AggregatedRecord"]

_PACKAGE = "shardline.kpl"


def _build() -> Any:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="shardline/kpl_messages.proto", package=_PACKAGE, syntax="proto2"
    )
    tag = proto.message_type.add(name="Tag")
    tag.field.add(name="key", number=1, label=field.LABEL_REQUIRED, type=field.TYPE_STRING)
    tag.field.add(name="value", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING)
    record = proto.message_type.add(name="Record")
    record.field.add(name="partition_key_index", number=1, label=field.LABEL_REQUIRED, type=field.TYPE_UINT64)
    record.field.add(
        name="explicit_hash_key_index", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_UINT64
    )
    record.field.add(name="data", number=3, label=field.LABEL_REQUIRED, type=field.TYPE_BYTES)
    record.field.add(
        name="tags",
        number=4,
        label=field.LABEL_REPEATED,
        type=field.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.Tag",
    )
    aggregated = proto.message_type.add(name="AggregatedRecord")
    aggregated.field.add(
        name="partition_key_table", number=1, label=field.LABEL_REPEATED, type=field.TYPE_STRING
    )
    aggregated.field.add(
        name="explicit_hash_key_table", number=2, label=field.LABEL_REPEATED, type=field.TYPE_STRING
    )
    aggregated.field.add(
        name="records",
        number=3,
        label=field.LABEL_REPEATED,
        type=field.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.Record",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.AggregatedRecord"))


AggregatedRecord: Any = _build()
"""The generated message class; ``AggregatedRecord()`` / ``.ParseFromString(body)``."""

"""Reading a stream or topic for a person to look at (``shardline tail``), never checkpointing.

:class:`~consumers.tail.kinesis.KinesisFollower` follows a Kinesis stream;
:class:`~consumers.tail.kafka.KafkaFollower` (Kafka extra) a topic.
"""

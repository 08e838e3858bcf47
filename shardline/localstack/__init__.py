"""Self-installing local stack: kinesis-mock, moto server, Tansu, InfluxDB on 127.0.0.1."""

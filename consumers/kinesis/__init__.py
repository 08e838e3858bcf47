"""consumers.kinesis"""

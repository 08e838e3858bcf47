"""benchmarks.peers"""

"""consumers/sinks"""

"""consumers.checkpoint"""

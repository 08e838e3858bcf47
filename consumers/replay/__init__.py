"""consumers.replay"""

"""consumers.adapters"""

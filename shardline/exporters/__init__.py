"""shardline.exporters"""

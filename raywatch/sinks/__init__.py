"""raywatch.sinks"""

"""raywatch.stats"""

"""raywatch.serve"""

"""raywatch.alerts"""

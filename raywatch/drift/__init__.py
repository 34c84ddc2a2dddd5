"""raywatch.drift"""

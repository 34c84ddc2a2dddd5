"""raywatch.actor"""

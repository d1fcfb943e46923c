"""surrogate"""

"""The amlpipe engine: plain Python, no ``azure.functions`` imports."""

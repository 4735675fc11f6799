"""amlpipe: Azure ML v1-style pipelines on Azure Functions and Azure Storage."""

__version__ = "0.1.0"

"""The service version reported by ``/api/health`` and the OpenAPI document."""

VERSION = "0.1.0"

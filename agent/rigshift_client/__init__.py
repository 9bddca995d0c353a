"""The small HTTP client shared by the node agent and the customer CLI."""

from rigshift_client import display
from rigshift_client.client import ApiClient, ApiError

__all__ = ["ApiClient", "ApiError", "display"]

"""A thin JSON-over-HTTP client for the RigShift API. No Django import."""

from typing import Any

import requests


class ApiError(Exception):
    """The API answered with an error; `message` is the API's own `detail`."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class ApiClient:
    def __init__(
        self, *, server: str, token: str | None = None, timeout: float = 10.0, session: requests.Session | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        all_headers = {"Accept": "application/json"}
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        response = self.session.request(
            method, f"{self.server}{path}", json=json, params=params, headers=all_headers, timeout=self.timeout
        )
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            message = body.get("detail", str(body)) if isinstance(body, dict) else str(body)[:500]
            raise ApiError(response.status_code, message, body)
        return body

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

"""The judge's sections of `shadowjudge.yaml`: the store (and, later, the judge itself)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StoreSettings(BaseModel):
    """`chdb:///path/to/dir` (embedded ClickHouse) or `http(s)://user:pass@host:8123/db`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "chdb:///./var/shadowjudge"
    batch_rows: int = Field(default=5_000, gt=0)
    batch_seconds: float = Field(default=1.0, gt=0)
    body_ttl_days: int = Field(default=30, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("chdb", "http", "https"):
            raise ValueError(f"must be chdb:///dir or an http(s) ClickHouse URL, got {scheme!r}")
        return value

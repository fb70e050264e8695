"""The one place the serving API's user and item id types are defined (int64 today).

Request models, the store and the handlers use these aliases, so a change of id type happens here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

UserId = int
ItemId = int
UserIdField = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, description="user id (int64)")]
ItemIdField = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, description="item id (int64)")]

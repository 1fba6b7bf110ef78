from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import BaseModel, EmailStr, Field, StringConstraints

Password = Annotated[str, Field(min_length=15, max_length=128)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class RegisterRequest(StrictModel):
    model_config = example(
        email="ada@example.com",
        password="correct horse battery staple",  # noqa: S106 - the documented example
        display_name="Ada Lovelace",
    )

    email: EmailStr
    password: Password
    display_name: DisplayName


class LoginRequest(StrictModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class UserResponse(ResponseModel):
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class PublicUserResponse(ResponseModel):
    id: uuid.UUID
    display_name: str
    email: str
    is_active: bool


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class ChangePasswordRequest(StrictModel):
    current_password: str = Field(max_length=1024)
    new_password: Password


class UpdateProfileRequest(StrictModel):
    display_name: DisplayName


class AdminUpdateUserRequest(StrictModel):
    role: Literal["admin", "member"] | None = None
    is_active: bool | None = None


class UserSummary(ResponseModel):
    id: uuid.UUID
    display_name: str
    # Null unless the caller is an admin or shares a project with this user.
    email: str | None


class UserPage(Page[UserSummary]):
    pass


class RevokedSessionItem(ResponseModel):
    session_id: uuid.UUID
    user_id: uuid.UUID
    revoked_at: datetime
    forget_after: datetime


class RevokedSessionsResponse(BaseModel):
    items: list[RevokedSessionItem]

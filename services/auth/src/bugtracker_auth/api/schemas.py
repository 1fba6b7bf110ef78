from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from bugtracker_shared.pagination import Page
from bugtracker_shared.web import ResponseModel, StrictModel, example
from pydantic import BaseModel, EmailStr, Field, StringConstraints, field_validator

from bugtracker_auth.domain.personal_tokens import MAX_LIFETIME_DAYS, MIN_LIFETIME_DAYS

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


# At most this many ids in one `POST /internal/users/lookup`.
MAX_LOOKUP_IDS = 500


class UserLookupRequest(StrictModel):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_LOOKUP_IDS)


class UserContact(ResponseModel):
    """A user as other services need to write to them: never the password hash or role."""

    id: uuid.UUID
    email: str
    display_name: str
    is_active: bool


class UserLookupResponse(BaseModel):
    users: list[UserContact]


class RevokedSessionItem(ResponseModel):
    session_id: uuid.UUID
    user_id: uuid.UUID
    revoked_at: datetime
    forget_after: datetime


class RevokedSessionsResponse(BaseModel):
    items: list[RevokedSessionItem]


TokenName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ScopeName = Literal["read", "write"]


class CreateTokenRequest(StrictModel):
    model_config = example(name="nightly export", scopes=["read"], expires_in_days=90)

    name: TokenName
    # `["read"]`, or `["read", "write"]` for a token that may change things too.
    scopes: list[ScopeName] = Field(min_length=1, max_length=2)
    expires_in_days: int = Field(ge=MIN_LIFETIME_DAYS, le=MAX_LIFETIME_DAYS)

    @field_validator("scopes")
    @classmethod
    def _read_and_maybe_write(cls, scopes: list[str]) -> list[str]:
        if "read" not in scopes or len(set(scopes)) != len(scopes):
            raise ValueError('must be ["read"] or ["read", "write"]')
        return scopes


class TokenSummary(ResponseModel):
    """A personal access token as its owner sees it: never the secret."""

    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None


class CreatedTokenResponse(ResponseModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    # The secret, shown this once: store it now (auth keeps only its hash).
    token: str


class TokenPage(Page[TokenSummary]):
    pass


class ExchangeRequest(StrictModel):
    token: str = Field(min_length=1, max_length=256)


class ExchangeResponse(BaseModel):
    access_token: str
    expires_in: int
    token_id: uuid.UUID
    user_id: uuid.UUID
    scopes: list[str]
    expires_at: datetime


class TokenUse(StrictModel):
    id: uuid.UUID
    used_at: datetime


class TokenUsesRequest(StrictModel):
    uses: list[TokenUse] = Field(max_length=100_000)

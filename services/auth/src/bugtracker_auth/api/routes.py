from __future__ import annotations

import uuid
from typing import Annotated, Any

from bugtracker_shared.web import CurrentPrincipal
from fastapi import APIRouter, Depends, Form, Request, Response

from bugtracker_auth.api.schemas import (
    LoginRequest,
    PublicUserResponse,
    RegisterRequest,
    TokenResponse,
    UserResponse,
)
from bugtracker_auth.application.use_cases import AuthUseCases
from bugtracker_auth.domain.users import IssuedTokens, User


def use_cases(request: Request) -> AuthUseCases:
    cases: AuthUseCases = request.app.state.use_cases
    return cases


UseCases = Annotated[AuthUseCases, Depends(use_cases)]

router = APIRouter(prefix="/api/v1")
keys_router = APIRouter()


def _user(user: User) -> UserResponse:
    return UserResponse(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role.value,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


def _tokens(tokens: IssuedTokens, response: Response) -> TokenResponse:
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        refresh_expires_in=tokens.refresh_expires_in,
    )


@router.post("/auth/register", status_code=201, tags=["auth"])
async def register(body: RegisterRequest, cases: UseCases, response: Response) -> UserResponse:
    user = await cases.register(
        email=str(body.email), password=body.password, display_name=body.display_name
    )
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return _user(user)


@router.post("/auth/login", tags=["auth"])
async def login(body: LoginRequest, cases: UseCases, response: Response) -> TokenResponse:
    return _tokens(await cases.login(email=body.email, password=body.password), response)


@router.post("/auth/token", tags=["auth"])
async def token(
    username: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    cases: UseCases,
    response: Response,
) -> TokenResponse:
    """OAuth2 password form, so Swagger's Authorize button works."""
    return _tokens(await cases.login(email=username, password=password), response)


@router.get("/users/me", tags=["users"])
async def me(principal: CurrentPrincipal, cases: UseCases) -> UserResponse:
    return _user(await cases.get_user(principal.user_id))


@router.get("/users/{user_id}", tags=["users"])
async def get_user(
    user_id: uuid.UUID, _principal: CurrentPrincipal, cases: UseCases
) -> PublicUserResponse:
    user = await cases.get_user(user_id)
    return PublicUserResponse(
        id=user.id, display_name=user.display_name, email=user.email, is_active=user.is_active
    )


@keys_router.get("/.well-known/jwks.json", tags=["auth"])
@keys_router.get("/api/v1/auth/jwks.json", tags=["auth"])
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    document: dict[str, Any] = request.app.state.keys.jwks()
    return document

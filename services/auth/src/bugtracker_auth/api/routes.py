from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from bugtracker_shared.tokens import Principal
from bugtracker_shared.web import (
    CurrentPrincipal,
    Paging,
    from_app_state,
    internal_router,
    unauthorized,
)
from fastapi import APIRouter, Depends, Form, Query, Request, Response
from pydantic import StringConstraints

from bugtracker_auth.api.schemas import (
    AdminUpdateUserRequest,
    ChangePasswordRequest,
    CreatedTokenResponse,
    CreateTokenRequest,
    ExchangeRequest,
    ExchangeResponse,
    LoginRequest,
    PublicUserResponse,
    RefreshRequest,
    RegisterRequest,
    RevokedSessionItem,
    RevokedSessionsResponse,
    TokenPage,
    TokenResponse,
    TokenSummary,
    TokenUsesRequest,
    UpdateProfileRequest,
    UserContact,
    UserLookupRequest,
    UserLookupResponse,
    UserPage,
    UserResponse,
    UserSummary,
)
from bugtracker_auth.application.personal_tokens import PersonalTokenUseCases
from bugtracker_auth.application.use_cases import AuthUseCases
from bugtracker_auth.domain.errors import SessionRevokedError
from bugtracker_auth.domain.personal_tokens import PersonalAccessToken, canonical_scopes
from bugtracker_auth.domain.users import GlobalRole, IssuedTokens, User

UseCases = Annotated[AuthUseCases, Depends(from_app_state(AuthUseCases))]
TokenCases = Annotated[
    PersonalTokenUseCases, Depends(from_app_state(PersonalTokenUseCases, "personal_tokens"))
]


async def active_principal(principal: CurrentPrincipal, cases: UseCases) -> Principal:
    """The verified caller whose session is still live and whose account is active.
    Auth owns that state, so it checks it on every request (one indexed lookup)."""
    try:
        await cases.ensure_session_active(
            user_id=principal.user_id,
            session_id=principal.session_id,
            personal_token=principal.is_personal_token,
        )
    except SessionRevokedError as exc:
        raise unauthorized(str(exc), exc.code) from exc
    return principal


ActivePrincipal = Annotated[Principal, Depends(active_principal)]


async def client_ip(request: Request) -> str | None:
    """The client address as uvicorn determined it (docs/adr/0027): the gateway's
    X-Forwarded-For when the peer is the gateway (`--forwarded-allow-ips`, set wherever
    auth is launched), else the socket peer. No header of its own counts here."""
    return request.client.host if request.client else None


ClientIp = Annotated[str | None, Depends(client_ip)]
# The directory is a search, not a list: at least 3 characters besides surrounding spaces.
SearchQuery = StringConstraints(strip_whitespace=True, min_length=3, max_length=100)

router = APIRouter(prefix="/api/v1")
keys_router = APIRouter()
internal = internal_router()


def _user(user: User) -> UserResponse:
    return UserResponse.from_attributes(user, role=user.role.value)


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
async def login(
    body: LoginRequest, cases: UseCases, response: Response, ip: ClientIp
) -> TokenResponse:
    tokens = await cases.login(email=body.email, password=body.password, client_ip=ip)
    return _tokens(tokens, response)


@router.post("/auth/token", tags=["auth"])
async def token(
    username: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    cases: UseCases,
    response: Response,
    ip: ClientIp,
) -> TokenResponse:
    """OAuth2 password form, so Swagger's Authorize button works."""
    tokens = await cases.login(email=username, password=password, client_ip=ip)
    return _tokens(tokens, response)


@router.post("/auth/refresh", tags=["auth"])
async def refresh(body: RefreshRequest, cases: UseCases, response: Response) -> TokenResponse:
    """A new token pair; the refresh token presented is spent. Presenting a spent one
    again ends the whole session."""
    return _tokens(await cases.refresh(refresh_token=body.refresh_token), response)


@router.post("/auth/logout", status_code=204, tags=["auth"])
async def logout(principal: ActivePrincipal, cases: UseCases) -> Response:
    await cases.logout(user_id=principal.user_id, session_id=principal.session_id)
    return Response(status_code=204)


@router.get("/users/me", tags=["users"])
async def me(principal: ActivePrincipal, cases: UseCases) -> UserResponse:
    return _user(await cases.get_user(principal.user_id))


@router.patch("/users/me", tags=["users"])
async def update_me(
    body: UpdateProfileRequest, principal: ActivePrincipal, cases: UseCases
) -> UserResponse:
    user = await cases.update_profile(user_id=principal.user_id, display_name=body.display_name)
    return _user(user)


@router.post("/users/me/password", status_code=204, tags=["users"])
async def change_password(
    body: ChangePasswordRequest, principal: ActivePrincipal, cases: UseCases, ip: ClientIp
) -> Response:
    """Every other session ends; this one stays. Wrong current passwords are throttled
    like failed logins (429)."""
    await cases.change_password(
        user_id=principal.user_id,
        session_id=principal.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
        client_ip=ip,
        via_personal_token=principal.is_personal_token,
    )
    return Response(status_code=204)


def _token_summary(token: PersonalAccessToken) -> TokenSummary:
    return TokenSummary.from_attributes(token, scopes=[s.value for s in token.scopes])


@router.post("/users/me/tokens", status_code=201, tags=["users"])
async def create_token(
    body: CreateTokenRequest, principal: ActivePrincipal, cases: TokenCases, response: Response
) -> CreatedTokenResponse:
    """A personal access token for scripts (`Authorization: Bearer btp_...`), with the
    caller's roles, read-only or read-write. The secret is in this answer only. Not with
    a personal access token (403 `insufficient_scope`); at most 100 live tokens (409)."""
    created = await cases.create(
        user_id=principal.user_id,
        via_personal_token=principal.is_personal_token,
        name=body.name,
        scopes=canonical_scopes(body.scopes),
        lifetime=timedelta(days=body.expires_in_days),
    )
    response.headers["Location"] = f"/api/v1/users/me/tokens/{created.token.id}"
    response.headers["Cache-Control"] = "no-store"
    token = created.token
    return CreatedTokenResponse.from_attributes(
        token, scopes=[s.value for s in token.scopes], token=created.secret
    )


@router.get("/users/me/tokens", tags=["users"])
async def list_tokens(principal: ActivePrincipal, cases: TokenCases, paging: Paging) -> TokenPage:
    """The caller's personal access tokens that are not revoked, newest first; never
    their secrets."""
    page = await cases.list_tokens(
        user_id=principal.user_id, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(TokenPage, page, _token_summary)


@router.delete("/users/me/tokens/{token_id}", status_code=204, tags=["users"])
async def revoke_token(
    token_id: uuid.UUID, principal: ActivePrincipal, cases: TokenCases
) -> Response:
    """Revoke one of the caller's tokens: refused everywhere within a second."""
    await cases.revoke(user_id=principal.user_id, token_id=token_id)
    return Response(status_code=204)


@router.get("/users", tags=["users"])
async def search_users(
    principal: ActivePrincipal,
    cases: UseCases,
    q: Annotated[str, SearchQuery, Query()],
    paging: Paging,
) -> UserPage:
    """Active users whose email or display name starts with `q` (case-insensitive, at
    least 3 characters): for an admin among everyone, for anyone else among the users who
    share a project with them, plus the user whose email is exactly `q`. `email` is null
    unless the caller is an admin or shares a project with that user."""
    page = await cases.search_users(
        caller_id=principal.user_id, q=q, limit=paging.limit, cursor=paging.cursor
    )
    return paging.answer(UserPage, page, UserSummary.from_attributes)


@router.get("/users/{user_id}", tags=["users"])
async def get_user(
    user_id: uuid.UUID, _principal: ActivePrincipal, cases: UseCases
) -> PublicUserResponse:
    user = await cases.get_user(user_id)
    return PublicUserResponse.from_attributes(user)


@router.patch("/users/{user_id}", tags=["users"])
async def administer_user(
    user_id: uuid.UUID, body: AdminUpdateUserRequest, principal: ActivePrincipal, cases: UseCases
) -> UserResponse:
    """Admins only: change the global role, or deactivate (every session ends at once)."""
    user = await cases.administer_user(
        actor_id=principal.user_id,
        user_id=user_id,
        role=GlobalRole(body.role) if body.role else None,
        is_active=body.is_active,
    )
    return _user(user)


@keys_router.get("/.well-known/jwks.json", tags=["auth"])
@keys_router.get("/api/v1/auth/jwks.json", tags=["auth"])
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    document: dict[str, Any] = request.app.state.keys.jwks()
    return document


@internal.get("/revoked-sessions")
async def revoked_sessions(cases: UseCases) -> RevokedSessionsResponse:
    """Sessions revoked within the access-token lifetime: the gateway's starting list."""
    sessions, horizon = await cases.recently_revoked()
    return RevokedSessionsResponse(
        items=[
            RevokedSessionItem.from_attributes(s, forget_after=s.revoked_at + horizon)
            for s in sessions
        ]
    )


@internal.post("/users/lookup")
async def lookup_users(body: UserLookupRequest, cases: UseCases) -> UserLookupResponse:
    """Other services' lookup of users by id (1 to 500, one query): the ones that exist,
    active or not, with their email and display name; unknown ids are left out."""
    users = await cases.lookup_users(body.ids)
    return UserLookupResponse(users=[UserContact.from_attributes(u) for u in users])


@internal.post("/tokens/exchange")
async def exchange_token(body: ExchangeRequest, cases: TokenCases) -> ExchangeResponse:
    """The gateway's exchange of a personal access token for an access token of its
    owner (docs/adr/0042); 401 `invalid_token` for any token that is not live."""
    exchanged = await cases.exchange(secret=body.token)
    token = exchanged.token
    return ExchangeResponse(
        access_token=exchanged.access_token,
        expires_in=exchanged.expires_in,
        token_id=token.id,
        user_id=token.user_id,
        scopes=[s.value for s in token.scopes],
        expires_at=token.expires_at,
    )


@internal.post("/tokens/used", status_code=204)
async def tokens_used(body: TokenUsesRequest, cases: TokenCases) -> Response:
    """The gateway's report of when each token was last used (every minute)."""
    uses: dict[uuid.UUID, Any] = {}
    for use in body.uses:
        uses[use.id] = max(use.used_at, uses.get(use.id, use.used_at))
    await cases.record_uses(uses)
    return Response(status_code=204)


# The error answers of each operation that its route does not reveal (the OpenAPI
# document derives the rest: bugtracker_shared.openapi_answers, docs/adr/0031).
ANSWERS: dict[tuple[str, str], set[int]] = {
    ("POST", "/api/v1/auth/register"): {403, 409},
    ("POST", "/api/v1/auth/login"): {401},
    ("POST", "/api/v1/auth/token"): {401},
    ("POST", "/api/v1/auth/refresh"): {401},
    ("POST", "/api/v1/users/me/password"): {403},
    ("POST", "/api/v1/users/me/tokens"): {403, 409},
    ("PATCH", "/api/v1/users/{user_id}"): {403},
}

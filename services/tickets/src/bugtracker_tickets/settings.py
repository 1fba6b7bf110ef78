from __future__ import annotations

from pathlib import Path

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings, PeerSettings
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class AttachmentSettings(BaseSettings):
    """Where attachments' bytes go (docs/adr/0041): the directory `dir`, or an
    S3-compatible store when `s3_endpoint` and the rest of `s3_*` are set. The names are
    the deployment's (BUGTRACKER_ATTACHMENTS_*), not the service's: the gateway reads
    `max_bytes` too."""

    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_ATTACHMENTS_", extra="ignore")

    max_bytes: int = Field(default=25 * MIB, gt=0)
    # What each project's attachments may take together; 0: unlimited.
    quota_bytes: int = Field(default=0, ge=0)
    dir: Path = Path(".data/attachments")
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str = "us-east-1"
    # How long a presigned download URL is valid (at most 5 minutes).
    presign_seconds: int = Field(default=300, gt=0, le=300)
    # Bytes no row names are removed after this long (an upload between bytes and row).
    sweep_grace_seconds: float = Field(default=3600.0, gt=0)

    @property
    def uses_s3(self) -> bool:
        return bool(self.s3_endpoint)


class Settings(ServiceSettings, AuthKeysSettings, PeerSettings):
    """`internal_token`: with it (projects' BUGTRACKER_PROJECTS_INTERNAL_TOKEN), this
    service keeps its own view of memberships (ADR 0023); without it, every access check
    asks the projects service over HTTP."""

    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_TICKETS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_tickets@127.0.0.1:5432/bugtracker"
    projects_url: str = "http://127.0.0.1:8002"
    # An event applied later than this after it happened marks the view as lagging.
    membership_lag_seconds: float = 1.0
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)

from __future__ import annotations

from bugtracker_shared.secret_settings import ServiceSettings
from bugtracker_shared.settings import AuthKeysSettings, PeerSettings
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict


def _shared(name: str) -> AliasChoices:
    """A setting every component may read under one name (`BUGTRACKER_SMTP_HOST`), or by
    its field name when the settings are built in code."""
    return AliasChoices(f"BUGTRACKER_{name.upper()}", name)


class Settings(ServiceSettings, AuthKeysSettings, PeerSettings):
    model_config = SettingsConfigDict(env_prefix="BUGTRACKER_NOTIFICATIONS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://bugtracker_notifications@127.0.0.1:5432/bugtracker"
    # Who the recipients are (e-mail, name, active): auth's internal lookup.
    auth_url: str = "http://127.0.0.1:8001"
    # E-mail: off while no server is named (`make up` runs a local sink on 1025).
    smtp_host: str = Field("", validation_alias=_shared("smtp_host"))
    smtp_port: int = Field(25, validation_alias=_shared("smtp_port"))
    smtp_username: str = Field("", validation_alias=_shared("smtp_username"))
    smtp_password: str = Field("", validation_alias=_shared("smtp_password"))
    smtp_starttls: bool = Field(False, validation_alias=_shared("smtp_starttls"))
    mail_from: str = Field(
        "Bugtracker <bugtracker@localhost>", validation_alias=_shared("mail_from")
    )
    # Where links in mails point (the gateway as clients reach it).
    public_url: str = Field("http://127.0.0.1:8000", validation_alias=_shared("public_url"))
    # Signs the one-click unsubscribe links (needed when e-mail is on).
    unsubscribe_key: str = ""
    mail_poll_seconds: float = 1.0
    # The first retry after the mail server was away; each next one waits twice as long.
    mail_retry_seconds: float = 5.0
    digest_poll_seconds: float = 30.0

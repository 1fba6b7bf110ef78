"""Domain errors: plain exceptions with a stable `code`; the API edge maps them to HTTP."""


class AuthError(Exception):
    code = "error"


class EmailTakenError(AuthError):
    code = "email_taken"


class InvalidCredentialsError(AuthError):
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("The email or password is not correct.")


class UserNotFoundError(AuthError):
    code = "not_found"


class RegistrationClosedError(AuthError):
    code = "registration_closed"

"""Customer accounts: signup creates the user, the Customer row and a first API token."""

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from common.errors import ValidationFailed
from common.services import api_token_create
from marketplace.models import Customer


def customer_signup(*, username: str, password: str, email: str, company: str = "") -> tuple[Customer, str]:
    """Create a customer account; returns the Customer and a raw API token (shown once).

    The wallet starts at zero (its ledger account is created on first use).
    """
    username = (username or "").strip()
    email = (email or "").strip()
    errors: dict[str, list[str]] = {}
    if not username or len(username) > 150:
        errors["username"] = ["A username of 1 to 150 characters is required."]
    elif User.objects.filter(username__iexact=username).exists():
        errors["username"] = ["This username is taken."]
    try:
        validate_email(email)
    except DjangoValidationError:
        errors["email"] = ["Enter a valid email address."]
    try:
        validate_password(password or "", user=User(username=username, email=email))
    except DjangoValidationError as exc:
        errors["password"] = list(exc.messages)
    if len(company or "") > 200:
        errors["company"] = ["At most 200 characters."]
    if errors:
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        raise ValidationFailed(summary, details=errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
            customer = Customer.objects.create(user=user, company=(company or "").strip())
            _, raw = api_token_create(user=user, name="signup")
    except IntegrityError:
        raise ValidationFailed(
            "username: This username is taken.", details={"username": ["This username is taken."]}
        ) from None
    return customer, raw

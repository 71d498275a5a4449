from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class CreatorManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A creator needs an email address.")
        creator = self.model(email=self.normalize_email(email).lower(), **extra)
        creator.set_password(password)
        creator.save(using=self._db)
        return creator

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_confirmed_at", timezone.now())
        return self.create_user(email, password, **extra)


class Creator(AbstractBaseUser, PermissionsMixin):
    """A creator's account: they sign in with their email. Operators are creators with is_staff."""

    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=120, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    email_confirmed_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = CreatorManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="creator_email_ci_unique")]

    def __str__(self):
        return self.email

    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None


class ApiKey(models.Model):
    """A secret key (servers, `Authorization: Bearer`) or publishable key (browsers, the snippet).

    Only a SHA-256 of the key is stored: keys are 190 bits from a CSPRNG, so a fast hash is enough
    and lookups stay one indexed equality. `prefix` keeps the first characters for recognition.
    """

    class Kind(models.TextChoices):
        SECRET = "secret", "Secret"
        PUBLISHABLE = "publishable", "Publishable"

    creator = models.ForeignKey(Creator, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["creator", "kind"], name="apikey_creator_kind")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

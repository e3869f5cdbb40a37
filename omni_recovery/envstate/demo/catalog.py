"""The catalog the demo draws from: applications, blob kinds, services, people, roles, log lines."""

from __future__ import annotations

# name, priority, volumes ("type" or "type:name")
_APP_CATALOG: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("billing", "critical", ("postgres", "logs", "blobs:invoices")),
    ("auth-portal", "critical", ("postgres", "logs")),
    ("inventory", "standard", ("postgres", "logs")),
    ("orders", "critical", ("postgres", "logs")),
    ("payments", "critical", ("postgres", "logs")),
    ("catalog", "standard", ("postgres", "blobs:media")),
    ("search", "standard", ("index", "logs")),
    ("notifications", "low", ("logs",)),
    ("reporting", "low", ("postgres", "blobs:exports")),
    ("analytics", "low", ("postgres:warehouse", "logs")),
    ("shipping", "standard", ("postgres", "logs")),
    ("customer-profile", "standard", ("postgres", "blobs:avatars")),
    ("ledger", "critical", ("postgres", "logs")),
    ("recommendations", "low", ("index",)),
    ("pricing", "standard", ("postgres",)),
    ("helpdesk", "low", ("postgres", "blobs:attachments")),
    ("crm", "standard", ("postgres", "logs")),
    ("scheduler", "standard", ("postgres",)),
    ("audit-trail", "critical", ("logs", "blobs:archive")),
    ("wiki", "low", ("postgres", "blobs:uploads")),
    ("chat", "standard", ("postgres", "blobs:attachments")),
    ("media-transcoder", "low", ("blobs:media",)),
    ("geo", "low", ("index",)),
    ("feeds", "low", ("logs",)),
)
_EXTRA_APP_SHAPES: tuple[tuple[str, ...], ...] = (
    ("postgres", "logs"),
    ("postgres",),
    ("blobs:uploads", "logs"),
    ("index",),
    ("postgres", "blobs:attachments"),
)
_RANK = {"critical": 0, "standard": 1, "low": 2}
_VOLUME_WEIGHT = {"postgres": 4.0, "blobs": 3.0, "index": 2.0, "logs": 1.5}
_BLOB_KINDS: dict[str, tuple[tuple[str, bytes], ...]] = {
    "invoices": (("pdf", b"%PDF-1.7\n"),),
    "media": (
        ("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
        ("png", b"\x89PNG\r\n\x1a\n"),
        ("mp4", b"\x00\x00\x00\x20ftypisom"),
    ),
    "exports": (("csv.gz", b"\x1f\x8b\x08\x00"), ("parquet", b"PAR1")),
    "avatars": (("png", b"\x89PNG\r\n\x1a\n"), ("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")),
    "attachments": (("pdf", b"%PDF-1.6\n"), ("docx", b"PK\x03\x04"), ("png", b"\x89PNG\r\n\x1a\n")),
    "archive": (("tar.gz", b"\x1f\x8b\x08\x00"),),
    "uploads": (("bin", b""), ("zip", b"PK\x03\x04"), ("pdf", b"%PDF-1.5\n")),
}
_SERVICE_DEPENDS: dict[str, tuple[str, ...]] = {
    "storage": (),
    "auth": (),
    "monitoring": ("auth",),
    "logging": ("auth",),
    "network-management": ("monitoring",),
    "dns": ("network-management",),
    "api-gateway": ("auth", "dns", "logging"),
}
_SERVICE_PORTS: dict[str, list[int]] = {
    "storage": [3260, 2049, 7480],
    "auth": [8443],
    "monitoring": [9090, 9093],
    "logging": [9200, 5044],
    "network-management": [9696],
    "dns": [53],
    "api-gateway": [443, 8443],
}
_FIRST = (
    "anna", "ben", "carla", "david", "elena", "farid", "greta", "hugo", "ines", "jonas", "karin", "leo",
    "maria", "noah", "olga", "paul", "quinn", "rosa", "sven", "tara", "ugo", "vera", "wim", "xenia", "yusuf",
    "zoe",
)  # fmt: skip
_LAST = (
    "schmidt", "okafor", "nakamura", "garcia", "jensen", "rossi", "novak", "kowalski", "dubois", "silva",
    "khan", "müller", "lindqvist", "papadopoulos", "van-dijk", "ibrahim", "chen", "moreau", "horvat", "berg",
)  # fmt: skip
_RESOURCES = (
    "applications", "volumes", "secrets", "users", "roles", "policies", "clusters", "nodes", "networks",
    "backups", "metrics", "logs",
)  # fmt: skip
_ACTIONS = ("read", "create", "update", "delete")
_ROLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "Full control of the cluster", ("*",)),
    (
        "operator",
        "Runs applications and volumes",
        ("applications:*", "volumes:*", "metrics:read", "logs:read"),
    ),
    ("developer", "Deploys applications", ("applications:read", "applications:update", "logs:read")),
    ("auditor", "Reads everything except secrets", ("*:read",)),
    ("viewer", "Reads applications and metrics", ("applications:read", "metrics:read")),
    ("backup-operator", "Takes and restores backups", ("backups:*", "volumes:read")),
    ("security-officer", "Manages users, roles and policies", ("users:*", "roles:*", "policies:*")),
    ("network-admin", "Manages networks", ("networks:*", "nodes:read")),
    ("secret-manager", "Manages application secrets", ("secrets:*",)),
    ("service-account", "Used by applications", ("applications:read", "secrets:read", "metrics:create")),
)
_LOG_MESSAGES = (
    "GET /api/v1/{r}/{n} 200 {ms}ms",
    "POST /api/v1/{r} 201 {ms}ms",
    "GET /healthz 200 {ms}ms",
    "PUT /api/v1/{r}/{n} 204 {ms}ms",
    "GET /api/v1/{r}/{n} 404 {ms}ms",
    "connection pool: {n} active, {ms} idle",
    "job {r}-sync finished in {ms}ms, {n} rows",
    "cache miss for {r}:{n}",
    "slow query on {r} took {ms}ms",
    "retrying request to {r} (attempt {n})",
    "token refreshed for client {n}",
)
_LOG_LEVELS = ("INFO",) * 14 + ("DEBUG",) * 4 + ("WARN",) * 2 + ("ERROR",)

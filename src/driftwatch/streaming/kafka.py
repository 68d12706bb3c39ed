"""Kafka client options from settings: bootstrap servers, TLS and SASL.

The same settings configure the aiokafka clients of the batch consumer and publisher,
the topic admin and the faust app, so a worker talks to one cluster with one identity.
Secrets (the SASL password) come from the environment and are never logged.

>>> from driftwatch.settings import Settings
>>> s = Settings.load(env={"DRIFTWATCH_KAFKA_BOOTSTRAP": "k1:9092, k2:9093"}, config_file=None)
>>> bootstrap_servers(s)
['k1:9092', 'k2:9093']
>>> faust_broker_url(s)
'kafka://k1:9092;k2:9093'
>>> sorted(client_options(s))
['bootstrap_servers', 'security_protocol']
"""

from __future__ import annotations

import ssl
from typing import Any

from driftwatch.errors import ConfigError
from driftwatch.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def bootstrap_servers(settings: Settings) -> list[str]:
    """The configured bootstrap servers as ``host:port`` strings."""
    servers = settings.list_setting("kafka_bootstrap")
    if not servers:
        raise ConfigError("kafka_bootstrap: no bootstrap servers configured")
    return servers


def _protocol(settings: Settings) -> str:
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"kafka_security_protocol: {settings.kafka_security_protocol!r}; "
            f"valid: {', '.join(PROTOCOLS)}"
        )
    if protocol.startswith("SASL"):
        mechanism = settings.kafka_sasl_mechanism.upper()
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"kafka_sasl_mechanism: {settings.kafka_sasl_mechanism!r}; "
                f"valid: {', '.join(SASL_MECHANISMS)}"
            )
        if not settings.kafka_sasl_username:
            raise ConfigError(f"kafka_sasl_username: required with {protocol}")
    return protocol


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A TLS context for SSL/SASL_SSL (CA bundle from ``kafka_ssl_cafile``), else None."""
    if not _protocol(settings).endswith("SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client (consumer, producer, admin)."""
    protocol = _protocol(settings)
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism.upper()
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def faust_broker_url(settings: Settings) -> str:
    """The faust ``broker`` setting: ``kafka://host:port;host:port``."""
    return "kafka://" + ";".join(bootstrap_servers(settings))


def faust_credentials(settings: Settings) -> Any:
    """The faust ``broker_credentials`` for TLS/SASL, or None for PLAINTEXT."""
    import faust

    protocol = _protocol(settings)
    context = ssl_context(settings)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism.upper(),
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None

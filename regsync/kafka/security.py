"""Who a Kafka client is and how it connects: protocol, TLS files, SCRAM login, from the settings only.

A leaf of ``regsync.kafka`` (topics and bus both build clients with it).
"""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer

from schemas.errors import ConfigurationError

#: The pipeline's components, each of which may log in as its own Kafka principal (ACLs per principal).
COMPONENTS = ("admin", "connector", "gate", "loader", "reports")


def security(component: str | None = None) -> dict[str, object]:
    """kafka-python connection arguments for ``component``: protocol, TLS files and SCRAM login.

    From the settings only (``REGSYNC_KAFKA__…``), never from code. A SASL protocol without a
    principal for the component (nor a default one) is a configuration error, raised before any
    connection so the operator sees which setting is missing instead of an authentication timeout.
    """
    from regsync.settings import get_settings

    cfg = get_settings().kafka
    out: dict[str, object] = {"security_protocol": cfg.security_protocol}
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        if cfg.ca_file is not None:
            out["ssl_cafile"] = str(cfg.ca_file)
        if cfg.cert_file is not None:
            out["ssl_certfile"] = str(cfg.cert_file)
        if cfg.key_file is not None:
            out["ssl_keyfile"] = str(cfg.key_file)
        out["ssl_check_hostname"] = cfg.check_hostname
    if cfg.security_protocol.startswith("SASL_"):
        chosen = cfg.principals.get(component) if component else None
        if chosen is not None:
            user, password = chosen.username, chosen.password
        elif cfg.username and cfg.password is not None:
            user, password = cfg.username, cfg.password
        else:
            who = component or "this process"
            raise ConfigurationError(
                f"Kafka uses {cfg.security_protocol} but no principal is set for {who}: set "
                f"REGSYNC_KAFKA__PRINCIPALS__{(component or 'X').upper()}__USERNAME/__PASSWORD "
                "or REGSYNC_KAFKA__USERNAME/__PASSWORD"
            )
        out.update(
            sasl_mechanism=cfg.sasl_mechanism,
            sasl_plain_username=user,
            sasl_plain_password=password.get_secret_value(),
        )
    return out


def consumer(bootstrap: str, *topics: str, component: str | None = None, **config: object) -> KafkaConsumer:
    """A consumer logged in as ``component`` (see :func:`security`)."""
    return KafkaConsumer(*topics, **security(component), bootstrap_servers=bootstrap, **config)


def admin_client(bootstrap: str, component: str = "admin", **config: object) -> KafkaAdminClient:
    """An admin client logged in as ``component`` (topic creation and ACLs need the admin)."""
    return KafkaAdminClient(**security(component), bootstrap_servers=bootstrap, **config)

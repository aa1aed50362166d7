"""favgate: a GraphQL gateway, with a REST-compatible route, for WhatsApp favorites."""

__version__ = "0.1.0"

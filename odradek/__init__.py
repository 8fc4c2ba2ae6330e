"""odradek: a Kafka-compatible event-streaming broker in Python."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy so that `import odradek.protocol` does not pull in the whole broker.
    if name == "Broker":
        from odradek.broker import Broker

        return Broker
    raise AttributeError(name)


__all__ = ["Broker", "__version__"]
